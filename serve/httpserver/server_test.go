package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/render"
)

// fixedSnapshots serves one snapshot (or none).
type fixedSnapshots struct{ snap *render.Snapshot }

func (f fixedSnapshots) Snapshot() *render.Snapshot { return f.snap }

func testSnapshot(t testing.TB) *render.Snapshot {
	return loadTestTree(t, nil)
}

// testSnapshotWithDefault adds a default group whose profile wipes disks:
// what a request must never fall through to by accident.
func testSnapshotWithDefault(t testing.TB) *render.Snapshot {
	return loadTestTree(t, fstest.MapFS{
		"profiles/installer.yaml": {Data: []byte("kernel: /assets/installer\nargs: [wipe-disks=yes]\n")},
		"groups/default.yaml":     {Data: []byte("profile: installer\n")},
	})
}

func loadTestTree(t testing.TB, extra fstest.MapFS) *render.Snapshot {
	t.Helper()
	fsys := fstest.MapFS{
		"profiles/ign.yaml":    {Data: []byte("kernel: /assets/k\ninitrd: [/assets/i.gz, https://mirror.example/x.cpio]\nargs: [console=ttyS0, \"host={{ .Hostname }}\"]\nconfig: {template: ign.yaml, type: ignition}\n")},
		"profiles/plain.yaml":  {Data: []byte("kernel: /assets/k\n")},
		"templates/ign.yaml":   {Data: []byte("ignition: {version: 3.4.0}\npasswd: {users: [{name: core}]}\n")},
		"groups/node1.yaml":    {Data: []byte("profile: ign\nselector: {mac: \"52:54:00:00:00:01\"}\nmetadata: {role: etcd, net: {ip: 10.0.0.1}}\n")},
		"groups/noconfig.yaml": {Data: []byte("profile: plain\nselector: {mac: \"52:54:00:00:00:02\"}\n")},
	}
	maps.Copy(fsys, extra)
	snap, diags := render.Load(context.Background(), fsys, render.Options{ServerURL: "http://pxe.test", Revision: "rev1"})
	if snap == nil {
		t.Fatal(diags)
	}
	return snap
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func TestBootEndpoints(t *testing.T) {
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{ServerURL: "http://pxe.test"})
	must(t, err)
	for _, c := range []struct {
		target, want string
		code         int
	}{
		{"/ipxe?mac=52-54-00-00-00-01&hostname=n1", "kernel http://pxe.test/assets/k initrd=i.gz initrd=x.cpio console=ttyS0 host=n1\n", 200},
		{"/ipxe?mac=52:54:00:00:00:09", "no group matches mac=52:54:00:00:00:09 and there is no default group (revision rev1)\n", 404},
		{"/ipxe?mac=52:54:00:00:00:01&hostname=a%20b", `bad query: hostname: invalid hostname "a b"`, 400},
		{"/config?mac=52:54:00:00:00:01", `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`, 200},
		{"/ignition?mac=52:54:00:00:00:01", `"ignition":{"version":"3.4.0"}`, 200},
		{"/cloud?mac=52:54:00:00:00:01", "profile ign serves ignition, not cloud-config; fetch /config\n", 404},
		{"/config?mac=52:54:00:00:00:02", "profile plain has no config\n", 404},
		{"/metadata?mac=52:54:00:00:00:01&rack=r7", "LABEL_RACK=r7\nMAC=52:54:00:00:00:01\nNET_IP=10.0.0.1\nRACK=r7\nREQUEST_QUERY_MAC=52:54:00:00:00:01\nREQUEST_QUERY_RACK=r7\nREQUEST_RAW_QUERY=mac=52:54:00:00:00:01&rack=r7\nROLE=etcd\n", 200},
		{"/pixiecore/v1/boot/52:54:00:00:00:01", `{"kernel":"http://pxe.test/assets/k","initrd":["http://pxe.test/assets/i.gz","https://mirror.example/x.cpio"],"cmdline":"console=ttyS0 host="}`, 200},
		{"/pixiecore/v1/boot/nonsense", "bad MAC in path", 400},
		{"/boot.ipxe", "chain --autofree http://pxe.test/ipxe?mac=${mac:hexhyp}&uuid=${uuid:uristring}", 200},
		{"/readyz", "ok rev1\n", 200},
		{"/nowhere", "not found", 404},
	} {
		w := get(t, h, c.target)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("GET %s = %d %q\nwant %d containing %q", c.target, w.Code, w.Body.String(), c.code, c.want)
		}
		if strings.HasPrefix(c.target, "/ipxe?mac=52:54:00:00:00:0") && w.Header().Get(RevisionHeader) != "rev1" {
			t.Errorf("GET %s: revision header %q", c.target, w.Header().Get(RevisionHeader))
		}
	}
	if w := get(t, h, "/metadata?mac=52:54:00:00:00:01"); w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("metadata: Content-Type %q, want text/plain", w.Header().Get("Content-Type"))
	}
	if w := get(t, h, "/config?mac=52:54:00:00:00:01"); w.Header().Get("Content-Type") != "application/json" || !json.Valid(w.Body.Bytes()) {
		t.Errorf("ignition config: %q, valid JSON %v", w.Header().Get("Content-Type"), json.Valid(w.Body.Bytes()))
	}
}

func TestNotReadyBeforeFirstSnapshot(t *testing.T) {
	h, err := New(fixedSnapshots{}, Options{})
	must(t, err)
	for _, target := range []string{"/readyz", "/ipxe?mac=52:54:00:00:00:01", "/pixiecore/v1/boot/52:54:00:00:00:01"} {
		if w := get(t, h, target); w.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s = %d before any snapshot, want 503", target, w.Code)
		}
	}
	if w := get(t, h, "/healthz"); w.Code != http.StatusOK {
		t.Errorf("/healthz = %d", w.Code)
	}
}

// A failure Options.Ready reports makes /readyz 503 with its words even
// while a snapshot is served; boot endpoints keep answering.
func TestReadyzReportsReadyError(t *testing.T) {
	var failure error
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{Ready: func() error { return failure }})
	must(t, err)
	if w := get(t, h, "/readyz"); w.Code != http.StatusOK {
		t.Errorf("/readyz = %d %q with nothing failed", w.Code, w.Body.String())
	}
	failure = errors.New("proxydhcp :67: stopped")
	if w := get(t, h, "/readyz"); w.Code != http.StatusServiceUnavailable || w.Body.String() != "not ready: proxydhcp :67: stopped\n" {
		t.Errorf("/readyz = %d %q, want 503 naming the failure", w.Code, w.Body.String())
	}
	if w := get(t, h, "/ipxe?mac=52:54:00:00:00:01"); w.Code != http.StatusOK {
		t.Errorf("/ipxe = %d while not ready", w.Code)
	}
}
