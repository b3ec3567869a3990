package omaha_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha"
)

func post(t *testing.T, h http.Handler, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/update/", bytes.NewReader(body)))
	return rec
}

func TestResponderAnswersNoupdateAndCountsHosts(t *testing.T) {
	reg := prometheus.NewRegistry()
	rs := &omaha.Responder{Metrics: omaha.NewMetrics(reg)}
	for _, name := range []string{"testdata/flatcar-request.xml", "testdata/coreos-request.xml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		rec := post(t, rs, data)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		resp, err := omaha.ParseResponse(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		app := resp.App(omaha.AppID)
		if app == nil || app.Status != "ok" || len(app.Events) != 1 || app.Events[0].Status != "ok" {
			t.Fatalf("%s: answer %+v", name, resp)
		}
		if strings.Contains(name, "flatcar") && (app.UpdateCheck == nil || app.UpdateCheck.Status != "noupdate" || app.Ping == nil) {
			t.Errorf("flatcar: update check answered %+v", app.UpdateCheck)
		}
	}
	c := rs.Census()
	if c.Hosts != 2 || c.Versions["stable 3975.2.0"] != 1 || c.Versions["stable 289.0.0"] != 1 {
		t.Fatalf("census %+v", c)
	}
	if h := c.Recent[1]; h.MachineID != "5d1f3b0a9c2e4f6a8b7c9d0e1f2a3b4c" || h.Board != "amd64-usr" || h.LastEvent != "3/2" {
		t.Errorf("host %+v", h)
	}
	if got := hostsGauge(t, reg, "3975.2.0", "stable"); got != 1 {
		t.Errorf("hosts gauge %v", got)
	}

	// The same machine after a reboot into a new image moves, not adds.
	data, _ := os.ReadFile("testdata/flatcar-request.xml")
	post(t, rs, bytes.ReplaceAll(data, []byte(`version="3975.2.0"`), []byte(`version="4081.2.0"`)))
	if c := rs.Census(); c.Hosts != 2 || c.Versions["stable 4081.2.0"] != 1 || c.Versions["stable 3975.2.0"] != 0 {
		t.Fatalf("census after upgrade %+v", c)
	}
	if got := hostsGauge(t, reg, "3975.2.0", "stable"); got != -1 {
		t.Errorf("the series of a version no host runs any more is still there: %v", got)
	}

	for _, bad := range [][]byte{[]byte("<request"), []byte("not xml"), bytes.Repeat([]byte("x"), omaha.MaxBody+10)} {
		if rec := post(t, rs, bad); rec.Code != 400 {
			t.Errorf("bad request (%d bytes): %d", len(bad), rec.Code)
		}
	}
}

// Hosts choose their version strings: labels stay well-formed and few.
func TestResponderGaugeLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	rs := &omaha.Responder{Metrics: omaha.NewMetrics(reg)}
	data, _ := os.ReadFile("testdata/flatcar-request.xml")
	for i := range 300 {
		req := bytes.ReplaceAll(data, []byte(`version="3975.2.0"`), []byte(fmt.Sprintf(`version="1.%d.0"`, i)))
		post(t, rs, bytes.ReplaceAll(req, []byte("5d1f3b0a9c2e4f6a8b7c9d0e1f2a3b4c"), []byte(fmt.Sprint("m", i))))
	}
	post(t, rs, bytes.ReplaceAll(data, []byte(`version="3975.2.0"`), []byte(`version="a b&#10;c"`)))
	mfs, _ := reg.Gather()
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "pxeops_omaha_hosts" {
			series = len(mf.GetMetric())
		}
	}
	if series > 258 {
		t.Errorf("%d label pairs", series)
	}
	if hostsGauge(t, reg, "other", "other") != 300-256 || hostsGauge(t, reg, "invalid", "invalid") != 1 {
		t.Errorf("other %v, invalid %v", hostsGauge(t, reg, "other", "other"), hostsGauge(t, reg, "invalid", "invalid"))
	}
}

// What a host says is clipped before the census keeps it.
func TestResponderClipsWhatHostsReport(t *testing.T) {
	rs := &omaha.Responder{}
	data, _ := os.ReadFile("testdata/flatcar-request.xml")
	long := strings.Repeat("x", 5000)
	data = bytes.ReplaceAll(data, []byte("5d1f3b0a9c2e4f6a8b7c9d0e1f2a3b4c"), []byte(long))
	data = bytes.ReplaceAll(data, []byte(`track="stable"`), []byte(`track="`+long+`"`))
	post(t, rs, data)
	h := rs.Census().Recent[0]
	if len(h.MachineID) > 128 || len(h.Channel) > 64 || len(h.Version) > 64 {
		t.Errorf("kept %d, %d, %d bytes", len(h.MachineID), len(h.Channel), len(h.Version))
	}
}

func TestResponderCensusIsBounded(t *testing.T) {
	rs := &omaha.Responder{MaxHosts: 3}
	data, _ := os.ReadFile("testdata/flatcar-request.xml")
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		post(t, rs, bytes.ReplaceAll(data, []byte("5d1f3b0a9c2e4f6a8b7c9d0e1f2a3b4c"), []byte(id)))
		time.Sleep(time.Millisecond)
	}
	c := rs.Census()
	if c.Hosts != 3 || c.Recent[2].MachineID != "m2" {
		t.Fatalf("census %+v", c)
	}
}

func TestResponderProxyTriggersOneMirroringPass(t *testing.T) {
	rel := omahatest.New(t)
	rel.SetLatest("4081.2.0")
	var triggers atomic.Int32
	policy := omaha.Policy{Proxy: true, Server: rel.ServerURL(), Pinned: map[string]string{"stable/amd64": "3975.2.0"}}
	rs := &omaha.Responder{Policy: func() omaha.Policy { return policy }, Trigger: func() { triggers.Add(1) }}
	data, _ := os.ReadFile("testdata/flatcar-request.xml")
	rec := post(t, rs, data)
	if resp, err := omaha.ParseResponse(rec.Body); err != nil || resp.App(omaha.AppID).UpdateCheck.Status != "noupdate" {
		t.Fatalf("host answer: %v %s", err, rec.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for triggers.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if triggers.Load() != 1 {
		t.Fatalf("triggers %d", triggers.Load())
	}

	// Passthrough hands the upstream's answer to the host.
	policy.Passthrough = true
	rec = post(t, rs, data)
	if resp, err := omaha.ParseResponse(rec.Body); err != nil || resp.App(omaha.AppID).UpdateCheck.Status != "ok" || resp.Server != "omahatest" {
		t.Fatalf("passthrough answer: %v %s", err, rec.Body)
	}

	// A failing upstream neither breaks nor delays the host's answer.
	rel.SetStatus("/v1/update/", 500)
	start := time.Now()
	rec = post(t, rs, data)
	if resp, err := omaha.ParseResponse(rec.Body); err != nil || resp.App(omaha.AppID).UpdateCheck.Status != "noupdate" {
		t.Fatalf("answer with upstream down: %v %s", err, rec.Body)
	}
	if time.Since(start) > 2500*time.Millisecond {
		t.Errorf("answer took %v", time.Since(start))
	}
}

// hostsGauge is pxeops_omaha_hosts{version,channel}, -1 when absent.
func hostsGauge(t *testing.T, reg *prometheus.Registry, version, channel string) float64 {
	t.Helper()
	if v, ok := hostSeries(t, reg)[version+"/"+channel]; ok {
		return v
	}
	return -1
}

// hostRequest is the Flatcar request of machine id running version.
func hostRequest(t testing.TB, id, version string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/flatcar-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte("5d1f3b0a9c2e4f6a8b7c9d0e1f2a3b4c"), []byte(id))
	return bytes.ReplaceAll(data, []byte(`version="3975.2.0"`), []byte(`version="`+version+`"`))
}

// A full census drops the host silent the longest; a host that reports
// again is kept.
func TestResponderEvictsLongestSilent(t *testing.T) {
	rs := &omaha.Responder{MaxHosts: 3}
	for _, id := range []string{"m1", "m2", "m3", "m1", "m4", "m3", "m5"} {
		post(t, rs, hostRequest(t, id, "3975.2.0"))
	}
	var got []string
	for _, h := range rs.Census().Recent {
		got = append(got, h.MachineID)
	}
	if want := "m5 m3 m4"; strings.Join(got, " ") != want {
		t.Fatalf("census %v, want %s", got, want)
	}
}

// Evicted hosts leave the gauge series they were counted under, "other"
// included, so the gauge always adds up to the census.
func TestResponderGaugeExactAfterEvictions(t *testing.T) {
	const max = 300
	reg := prometheus.NewRegistry()
	rs := &omaha.Responder{MaxHosts: max, Metrics: omaha.NewMetrics(reg)}
	// More versions than the gauge keeps labels for: 44 count as other.
	for i := range max {
		post(t, rs, hostRequest(t, fmt.Sprint("a", i), fmt.Sprintf("1.%d.0", i)))
	}
	check := func(round string, want map[string]float64) {
		t.Helper()
		got := hostSeries(t, reg)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: gauge %v, want %v", round, got, want)
		}
		sum := 0.0
		for _, v := range got {
			sum += v
		}
		if c := rs.Census(); c.Hosts != max || sum != max {
			t.Errorf("%s: census %d hosts, gauge adds up to %v", round, c.Hosts, sum)
		}
	}
	if got := hostSeries(t, reg); got["other/other"] != 44 || len(got) != 257 {
		t.Fatalf("before evictions: other %v, %d series", got["other/other"], len(got))
	}
	// Each new host evicts one old one; the first still finds every label
	// pair taken and counts as other, the rest get their own.
	for i := range max {
		post(t, rs, hostRequest(t, fmt.Sprint("b", i), "2.0.0"))
	}
	check("second fleet", map[string]float64{"2.0.0/stable": max - 1, "other/other": 1})
	for i := range max {
		post(t, rs, hostRequest(t, fmt.Sprint("c", i), "3.0.0"))
	}
	check("third fleet", map[string]float64{"3.0.0/stable": max})
}

// hostSeries is pxeops_omaha_hosts as "version/channel" → value.
func hostSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pxeops_omaha_hosts" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["version"]+"/"+labels["channel"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

// A malformed request is refused without its content echoed back: an
// element name of 60 KB makes a short answer.
func TestResponderDoesNotEchoMalformedBodies(t *testing.T) {
	rs := &omaha.Responder{}
	name := strings.Repeat("x", 60_000)
	rec := post(t, rs, []byte("<request><"+name+" a='1'></request>"))
	if rec.Code != http.StatusBadRequest || rec.Body.Len() > 400 {
		t.Errorf("%d, %d bytes: %.200s", rec.Code, rec.Body.Len(), rec.Body.String())
	}
}

// An empty census is an empty list in /status's JSON, not null.
func TestEmptyCensusJSON(t *testing.T) {
	b, err := json.Marshal((&omaha.Responder{}).Census())
	if err != nil || !strings.Contains(string(b), `"recent":[]`) {
		t.Errorf("empty census: %s %v", b, err)
	}
}
