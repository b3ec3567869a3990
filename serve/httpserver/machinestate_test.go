package httpserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/serve/machinestate"
)

// installTree installs node 1 once, then boots its disk; node 2's group
// is chosen by label, so its report must carry the label to be found.
var installTree = fstest.MapFS{
	"profiles/installer.yaml": {Data: []byte("kernel: /assets/installer\nargs: [\"pxeops.installed={{ .InstalledURL }}\"]\n")},
	"profiles/disk.yaml":      {Data: []byte("boot: local\n")},
	"groups/install.yaml":     {Data: []byte("profile: installer\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
	"groups/installed.yaml":   {Data: []byte("profile: disk\nselector: {mac: \"52:54:00:00:00:01\", state: installed}\n")},
	"groups/rack.yaml":        {Data: []byte("profile: installer\nselector: {rack: r1}\n")},
	"groups/rack-done.yaml":   {Data: []byte("profile: disk\nselector: {rack: r1, state: installed}\n")},
}

func installSnapshot(t *testing.T) *render.Snapshot {
	t.Helper()
	snap, diags := render.Load(context.Background(), installTree, render.Options{ServerURL: "http://pxe.test", Revision: "rev1"})
	if snap == nil {
		t.Fatal(diags)
	}
	return snap
}

func openStore(t *testing.T) *machinestate.Store {
	t.Helper()
	st, err := machinestate.Open(filepath.Join(t.TempDir(), "machines.db"))
	must(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func post(h http.Handler, from, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", target, strings.NewReader(body))
	r.RemoteAddr = from + ":40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestInstallOnceThenBootTheDisk(t *testing.T) {
	store := openStore(t)
	h, err := New(fixedSnapshots{installSnapshot(t)}, Options{ServerURL: "http://pxe.test", Machines: store})
	must(t, err)
	w := get(t, h, "/ipxe?mac="+mac1)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "pxeops.installed=http://pxe.test/v1/machines/"+mac1+"/installed") {
		t.Fatalf("installer script: %d %s", w.Code, w.Body)
	}
	if w := get(t, h, "/ipxe?mac="+mac1+"&state=installed"); w.Code != 400 {
		t.Errorf("a request saying state=installed: %d %s, want 400", w.Code, w.Body)
	}
	if w := post(h, "192.0.2.1", "/v1/machines/"+mac1+"/installed", "done"); w.Code != 204 {
		t.Fatalf("report: %d %s", w.Code, w.Body)
	}
	got, ok := store.Get(mac1)
	if !ok || !got.Installed || got.Group != "install" || got.Profile != "installer" || got.Revision != "rev1" || time.Since(got.At) > time.Minute {
		t.Errorf("recorded %+v, %v", got, ok)
	}
	for _, target := range []string{"/ipxe?mac=" + mac1, "/ipxe?mac=52-54-00-00-00-01&hostname=&arch=x86_64"} {
		if w := get(t, h, target); w.Code != 200 || !strings.Contains(w.Body.String(), "sanboot --no-describe --drive 0x80") || !strings.Contains(w.Body.String(), "exit 0") {
			t.Errorf("%s after the report: %d %s", target, w.Code, w.Body)
		}
	}
	if w := get(t, h, "/pixiecore/v1/boot/"+mac1); w.Code != 404 || !strings.Contains(w.Body.String(), "boots the local disk") {
		t.Errorf("pixiecore for a local profile: %d %s", w.Code, w.Body)
	}
	// Idempotent: the first report's record stays.
	if w := post(h, "192.0.2.1", "/v1/machines/52-54-00-00-00-01/installed", ""); w.Code != 204 {
		t.Errorf("second report: %d %s", w.Code, w.Body)
	}
	if again, _ := store.Get(mac1); again != got {
		t.Errorf("second report changed the record: %+v, was %+v", again, got)
	}
	// A label-chosen group is found through the report's query.
	if w := post(h, "192.0.2.2", "/v1/machines/"+mac2+"/installed", ""); w.Code != 404 {
		t.Errorf("report of a machine no group matches by MAC: %d %s", w.Code, w.Body)
	}
	if w := post(h, "192.0.2.2", "/v1/machines/"+mac2+"/installed?rack=r1", ""); w.Code != 204 {
		t.Errorf("report with the label: %d %s", w.Code, w.Body)
	}
	if w := get(t, h, "/ipxe?mac="+mac2+"&rack=r1"); !strings.Contains(w.Body.String(), "sanboot") {
		t.Errorf("label group after the report: %s", w.Body)
	}
	for _, c := range []struct{ target, body string }{
		{"/v1/machines/zz/installed", "bad MAC"},
		{"/v1/machines/" + mac1 + "/installed?mac=" + mac2, "not the path's"},
		{"/v1/machines/" + mac1 + "/installed?state=installed", "state: set by the server"},
	} {
		if w := post(h, "192.0.2.1", c.target, ""); w.Code != 400 || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("POST %s = %d %q, want 400 %q", c.target, w.Code, w.Body, c.body)
		}
	}
	if w := post(h, "192.0.2.1", "/v1/machines/"+mac1+"/installed", strings.Repeat("x", maxReportBody+1)); w.Code != 413 {
		t.Errorf("oversized report body: %d", w.Code)
	}

	// The reset, on one port, is taken from loopback only.
	if w := post(h, "192.0.2.1", "/v1/machines/"+mac1+"/reset", ""); w.Code != 403 {
		t.Errorf("reset from the boot network: %d %s", w.Code, w.Body)
	}
	w = post(h, "127.0.0.1", "/v1/machines/"+mac1+"/reset", "")
	var answer struct {
		MAC   string
		Reset bool
		Was   machinestate.State
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &answer) != nil || !answer.Reset || answer.Was.Group != "install" {
		t.Errorf("reset: %d %s", w.Code, w.Body)
	}
	if w := post(h, "127.0.0.1", "/v1/machines/"+mac1+"/reset", ""); w.Code != 404 {
		t.Errorf("second reset: %d %s, want 404", w.Code, w.Body)
	}
	if w := get(t, h, "/ipxe?mac="+mac1); !strings.Contains(w.Body.String(), "kernel http://pxe.test/assets/installer") {
		t.Errorf("after the reset the installer again: %s", w.Body)
	}
}

// With the admin port apart, the report is on the boot port, the reset on
// the admin port (from anywhere that reaches it).
func TestMachineStateSplit(t *testing.T) {
	store := openStore(t)
	boot, admin, err := NewSplit(fixedSnapshots{installSnapshot(t)}, Options{ServerURL: "http://pxe.test", Machines: store})
	must(t, err)
	if w := post(admin, "192.0.2.1", "/v1/machines/"+mac1+"/installed", ""); w.Code != 404 && w.Code != 405 {
		t.Errorf("report on the admin port: %d", w.Code)
	}
	if w := post(boot, "192.0.2.1", "/v1/machines/"+mac1+"/installed", ""); w.Code != 204 {
		t.Fatalf("report on the boot port: %d %s", w.Code, w.Body)
	}
	if w := post(boot, "127.0.0.1", "/v1/machines/"+mac1+"/reset", ""); w.Code == 200 {
		t.Error("reset on the boot port")
	}
	if w := post(admin, "198.51.100.7", "/v1/machines/"+mac1+"/reset", ""); w.Code != 200 {
		t.Errorf("reset on the admin port: %d %s", w.Code, w.Body)
	}
}

// The report is decided as the machine's config is: under --access
// machine, only the machine itself, or, routed, with its script's token.
func TestInstalledReportAccess(t *testing.T) {
	store := openStore(t)
	binding := access.NewBindings(time.Minute, 0)
	h, err := New(fixedSnapshots{installSnapshot(t)}, Options{ServerURL: "http://pxe.test", Machines: store,
		Access: AccessOptions{Mode: access.Machine, Neighbours: neighbours{"192.0.2.1": mac1, "192.0.2.2": mac2}, Bindings: binding}})
	must(t, err)
	if w := post(h, "192.0.2.2", "/v1/machines/"+mac1+"/installed", ""); w.Code != 403 {
		t.Errorf("report from another machine: %d %s", w.Code, w.Body)
	}
	if w := post(h, "203.0.113.9", "/v1/machines/"+mac1+"/installed", ""); w.Code != 403 || !strings.Contains(w.Body.String(), "no_token") {
		t.Errorf("routed report without token: %d %s", w.Code, w.Body)
	}
	if _, ok := store.Get(mac1); ok {
		t.Fatal("a refused report was recorded")
	}
	// Routed: the script (bound by the 4011 exchange) carries the token
	// in its installed URL, and the report with it is taken.
	binding.Learn(mac1, netip.MustParseAddr("203.0.113.9"), time.Now())
	r := httptest.NewRequest("GET", "/ipxe?mac="+mac1, nil)
	r.RemoteAddr = "203.0.113.9:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	m := tokenRE.FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil || !strings.Contains(w.Body.String(), "/installed?pxeops.token=") {
		t.Fatalf("routed installer script: %d %s", w.Code, w.Body)
	}
	if w := post(h, "203.0.113.9", "/v1/machines/"+mac1+"/installed?pxeops.token="+m[1], ""); w.Code != 204 {
		t.Errorf("routed report with the token: %d %s", w.Code, w.Body)
	}
	if _, ok := store.Get(mac1); !ok {
		t.Error("the routed report was not recorded")
	}
}
