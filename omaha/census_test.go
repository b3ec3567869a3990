package omaha

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func censusRequest(id, version string) *Request {
	return &Request{Apps: []RequestApp{{AppID: AppID, MachineID: id, Version: version, Track: "stable", Board: "amd64-usr"}}}
}

// BenchmarkRecordAtCap is one update check from a host the census has not
// seen while it is full: every request past the cap evicts one host.
func BenchmarkRecordAtCap(b *testing.B) {
	const hosts = 100_000
	rs := &Responder{Metrics: NewMetrics(prometheus.NewRegistry())}
	for i := range hosts {
		rs.record(censusRequest("m"+strconv.Itoa(i), "3975.2.0"), "192.0.2.1:1234")
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rs.record(censusRequest("new"+strconv.Itoa(i), "4081.2.0"), "192.0.2.1:1234")
	}
	b.StopTimer()
	if n := len(rs.hosts); n != hosts {
		b.Fatalf("census holds %d hosts", n)
	}
}

// Hosts that check in over HTTP are counted per image side by the
// version they report; the gauge follows, and the time since a rollout's
// version was first reported does not restart when hosts report again.
func TestImageCensusOverHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	sides := []Side{
		{Image: "workers", Name: SidePinned, Version: "4081.2.0", Arch: "amd64"},
		{Image: "workers", Name: SideRollout, Version: "4152.2.0", Arch: "amd64", Share: "10%"},
		{Image: "arm", Name: SidePinned, Version: "4081.2.0", Arch: "arm64"},
	}
	rs := &Responder{Metrics: NewMetrics(reg), Policy: func() Policy { return Policy{Sides: sides} }}
	reg.MustRegister(rs.ImageHosts())
	srv := httptest.NewServer(rs)
	defer srv.Close()
	checkIn := func(id, version, board string) {
		t.Helper()
		body := fmt.Sprintf(`<request protocol="3.0"><app appid="%s" version="%s" track="stable" board="%s" machineid="%s"><updatecheck/></app></request>`, AppID, version, board, id)
		resp, err := http.Post(srv.URL+"/v1/update/", "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("check-in: %s", resp.Status)
		}
	}
	for i := range 3 {
		checkIn("pinned"+strconv.Itoa(i), "4081.2.0", "amd64-usr")
	}
	checkIn("canary", "4152.2.0", "amd64-usr")
	checkIn("stray", "3975.2.0", "amd64-usr")
	_, since := rs.VersionHosts("amd64", "4152.2.0")
	time.Sleep(10 * time.Millisecond)
	checkIn("canary", "4152.2.0", "amd64-usr") // again: still since the first

	c := rs.ImageCensus()
	w, arm := c["workers"], c["arm"]
	if w.Pinned.Hosts != 3 || w.Rollout == nil || w.Rollout.Hosts != 1 || w.Rollout.Share != "10%" || !w.Rollout.Since.Equal(since) || since.IsZero() {
		t.Errorf("workers census %+v rollout %+v (since %v)", w, w.Rollout, since)
	}
	if arm.Pinned.Hosts != 0 || arm.Rollout != nil {
		t.Errorf("arm census %+v: amd64 hosts counted for arm64", arm)
	}
	gauge := func(image, side string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "pxeops_omaha_image_hosts" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if l := m.GetLabel(); l[0].GetValue() == image && l[1].GetValue() == side {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if p, r, a := gauge("workers", "pinned"), gauge("workers", "rollout"), gauge("arm", "rollout"); p != 3 || r != 1 || a != -1 {
		t.Errorf("gauge pinned %v rollout %v arm rollout %v", p, r, a)
	}

	// The canary goes back to the pinned version: the rollout side is
	// empty, and its time starts again when a host reports it anew.
	checkIn("canary", "4081.2.0", "amd64-usr")
	if w := rs.ImageCensus()["workers"]; w.Pinned.Hosts != 4 || w.Rollout.Hosts != 0 || !w.Rollout.Since.IsZero() {
		t.Errorf("after the canary left: %+v %+v", w, w.Rollout)
	}
	checkIn("canary2", "4152.2.0", "amd64-usr")
	if _, again := rs.VersionHosts("amd64", "4152.2.0"); !again.After(since) {
		t.Errorf("since %v, want after %v", again, since)
	}
}
