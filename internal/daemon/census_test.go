package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/omaha"
)

// Hosts that check in at /v1/update/ are counted per image side in
// /status (omaha.images[id].census) and /metrics, by the version they
// report.
func TestStatusCensusPerImageSide(t *testing.T) {
	sum := strings.Repeat("a", 64)
	image := fmt.Sprintf(`os: flatcar
channel: stable
version: 4081.2.0
kernel: {url: /assets/k1, sha256: %[1]s}
initrd: [{url: /assets/i1, sha256: %[1]s}]
rollout:
  version: 4152.2.0
  share: 10%%
  kernel: {url: /assets/k2, sha256: %[1]s}
  initrd: [{url: /assets/i2, sha256: %[1]s}]
`, sum)
	r := start(t, Config{Source: "fleet", StateDir: t.TempDir(), Tree: fleetOf(t, map[string]string{
		"images/workers.yaml": image,
		"profiles/p.yaml":     "image: workers\n",
		"groups/g.yaml":       "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	})})
	for i, v := range []string{"4081.2.0", "4081.2.0", "4152.2.0", "3975.2.0"} {
		body := fmt.Sprintf(`<request protocol="3.0"><app appid="%s" version="%s" track="stable" board="amd64-usr" machineid="m%d"><updatecheck/></app></request>`, omaha.AppID, v, i)
		resp, err := http.Post(r.url+"/v1/update/", "text/xml", strings.NewReader(body))
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("check-in: %s", resp.Status)
		}
	}
	code, body := r.get("/status")
	var st struct {
		Omaha struct {
			Images map[string]struct {
				Census *struct {
					Pinned struct {
						Version string
						Hosts   int
					}
					Rollout *struct {
						Version, Share, Since string
						Hosts                 int
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status = %d %v: %s", code, err, body)
	}
	c := st.Omaha.Images["workers"].Census
	if c == nil || c.Pinned.Version != "4081.2.0" || c.Pinned.Hosts != 2 || c.Rollout == nil ||
		c.Rollout.Version != "4152.2.0" || c.Rollout.Share != "10%" || c.Rollout.Hosts != 1 || c.Rollout.Since == "" {
		t.Fatalf("census of workers in /status: %s", body)
	}
	_, metrics := r.get("/metrics")
	for _, series := range []string{`pxeops_omaha_image_hosts{image="workers",side="pinned"} 2`, `pxeops_omaha_image_hosts{image="workers",side="rollout"} 1`} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}
