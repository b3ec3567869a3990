package httpserver

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Over a real server on loopback, two machines on either side of a
// rollout's share get different kernels in /ipxe and GRUB configs, and
// the timeline records the version each was served and counts the
// rollout's kernel as the machine's kernel, not as another asset.
func TestRolloutOverLoopback(t *testing.T) {
	assets := t.TempDir()
	for _, v := range []string{"4081.2.0", "4116.0.0"} {
		must(t, os.MkdirAll(filepath.Join(assets, "flatcar", v), 0o755))
		must(t, os.WriteFile(filepath.Join(assets, "flatcar", v, "vmlinuz"), []byte("kernel "+v), 0o644))
	}
	srv := httptest.NewUnstartedServer(nil)
	serverURL := "http://" + srv.Listener.Addr().String()
	snap, diags := render.Load(context.Background(), fstest.MapFS{
		"images/flatcar-stable.yaml": {Data: []byte(`os: flatcar
version: 4081.2.0
kernel: {url: /assets/flatcar/4081.2.0/vmlinuz}
initrd: [{url: /assets/flatcar/4081.2.0/initrd.cpio.gz}]
rollout:
  version: 4116.0.0
  share: 30%
  kernel: {url: /assets/flatcar/4116.0.0/vmlinuz}
  initrd: [{url: /assets/flatcar/4116.0.0/initrd.cpio.gz}]
`)},
		"profiles/worker.yaml": {Data: []byte("image: flatcar-stable\nargs: [\"v={{ .Image.Version }}\"]\n")},
		"profiles/grub.yaml":   {Data: []byte("image: flatcar-stable\nloader: grub\n")},
		"groups/default.yaml":  {Data: []byte("profile: worker\n")},
		"groups/uefi.yaml":     {Data: []byte("profile: grub\nselector: {fw: uefi}\n")},
	}, render.Options{ServerURL: serverURL, Revision: "r1"})
	if snap == nil {
		t.Fatal(diags)
	}
	tl := timeline.New(timeline.Options{})
	h, err := New(fixedSnapshots{snap}, Options{ServerURL: serverURL, AssetsDir: assets, Timeline: tl})
	must(t, err)
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)

	var pinned, canary string
	for i := 0; pinned == "" || canary == ""; i++ {
		mac := fmt.Sprintf("52:54:00:00:%02x:01", i)
		if render.RolloutSide("flatcar-stable", "4116.0.0", mac, 3000) {
			canary = cmp.Or(canary, mac)
		} else {
			pinned = cmp.Or(pinned, mac)
		}
	}
	fetch := func(path string) string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	for _, c := range []struct{ mac, version string }{{pinned, "4081.2.0"}, {canary, "4116.0.0"}} {
		script := fetch("/ipxe?mac=" + c.mac)
		kernel := "kernel " + serverURL + "/assets/flatcar/" + c.version + "/vmlinuz "
		if !strings.Contains(script, kernel) || !strings.Contains(script, " v="+c.version+"\n") {
			t.Errorf("%s: want %q and v=%s in\n%s", c.mac, kernel, c.version, script)
		}
		// The kernel's download follows the script, from the same address.
		if got := fetch("/assets/flatcar/" + c.version + "/vmlinuz"); got != "kernel "+c.version {
			t.Errorf("%s: kernel %q", c.mac, got)
		}
		m, ok := tl.Machine(c.mac)
		if !ok || m.ImageVersion != c.version || m.Rollout != (c.version == "4116.0.0") || m.Stage != timeline.StageKernel {
			t.Errorf("%s: timeline %+v, want image version %s and the kernel as its last stage", c.mac, m, c.version)
		}
		if n := len(m.Events); n < 2 || m.Events[n-2].Stage != timeline.StageIPXE || m.Events[n-2].ImageVersion != c.version {
			t.Errorf("%s: events %+v", c.mac, m.Events)
		}
		grub := fetch("/grub?mac=" + c.mac + "&fw=uefi")
		if !strings.Contains(grub, "linux '/assets/flatcar/"+c.version+"/vmlinuz'") || !strings.Contains(grub, "initrd '/assets/flatcar/"+c.version+"/initrd.cpio.gz'") {
			t.Errorf("%s: GRUB config\n%s", c.mac, grub)
		}
	}
}
