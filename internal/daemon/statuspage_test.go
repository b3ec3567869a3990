package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/browsertest"
	"github.com/pxeops/pxeops/reconcile"
	"github.com/pxeops/pxeops/serve/machinestate"
	"github.com/pxeops/pxeops/serve/timeline"
)

// fakeStates is a machine state store holding the installed MACs.
type fakeStates map[string]machinestate.State

func (f fakeStates) Get(mac string) (machinestate.State, bool) { st, ok := f[mac]; return st, ok }
func (f fakeStates) Set(string, machinestate.State) error      { return nil }
func (f fakeStates) Reset(string) (bool, error)                { return false, nil }

// checkPage fails the test on what the browser reported, and on a tab
// that asked for anything but the page itself (the page loads nothing).
func checkPage(t *testing.T, tab *browsertest.Tab, page string) {
	t.Helper()
	tab.Check(t)
	if reqs := tab.Requests(); len(reqs) != 1 || reqs[0] != page {
		t.Errorf("the tab asked for %q, want only the page %s", reqs, page)
	}
}

// The status page in headless Chromium: it shows what the daemon knows,
// logs no console error, and loads nothing but itself.
func TestStatusPageInChromium(t *testing.T) {
	// The page with a boot record: the daemon's adapter puts its machines
	// in the table the browser shows.
	t.Run("boot record", func(t *testing.T) {
		now := time.Now()
		status := func() Status {
			return Status{Version: "v-test", ServerURL: "http://pxe.test",
				Status: reconcile.Status{Ready: true, Served: &reconcile.Served{Revision: "feedc0de", Since: now.Add(-time.Minute)},
					LastAttempt: &reconcile.Attempt{Revision: "feedc0de", At: now.Add(-time.Minute), Result: reconcile.ResultServed}},
				Omaha: OmahaStatus{Updater: "off: test"}}
		}
		rec := timeline.New(timeline.Options{Now: func() time.Time { return now.Add(-12 * time.Second) }})
		booted := mustMAC(t, "52:54:00:12:34:56")
		rec.DHCP(booted, timeline.StageOffer, netip.MustParseAddr("192.0.2.10"), "undionly.kpxe")
		rec.Unmatched(timeline.Client{MAC: mustMAC(t, "52:54:00:ab:cd:ef"), Arch: "x86_64"})
		states := fakeStates{"52:54:00:12:34:56": {Installed: true, At: now}}
		srv := httptest.NewServer(statusPage(status, rec, states))
		defer srv.Close()
		b := browsertest.New(t)
		tab := b.Open(t, srv.URL+"/")
		if got := tab.Text(t, "#machines tbody tr:first-child td.mac"); got != "52:54:00:12:34:56" {
			t.Errorf("machine row MAC %q", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.stage"); got != "offer" {
			t.Errorf("machine row stage %q, want offer", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.state"); got != "installed" {
			t.Errorf("machine row state %q, want installed", got)
		}
		// Recorded 12 s before now; the browser's start takes a few more.
		var ago int
		if got := tab.Text(t, "#machines tbody tr:first-child time"); func() bool { _, err := fmt.Sscanf(got, "%ds ago", &ago); return err != nil }() || ago < 12 || ago > 60 {
			t.Errorf("machine row time %q, want 12s ago or a little more", got)
		}
		if got := tab.Text(t, "#unmatched tbody td.mac"); got != "52:54:00:ab:cd:ef" {
			t.Errorf("unmatched row MAC %q", got)
		}
		tab.Screenshot(t, t.ArtifactDir(), "status-page-boot-record")
		checkPage(t, tab, srv.URL+"/")
	})

	// A real daemon that a machine boots from: the page shows the served
	// revision and the reload's result, as /status has them.
	t.Run("daemon", func(t *testing.T) {
		r := start(t, Config{Source: "fleet", Tree: fleet(t), Version: "v-test", StateDir: t.TempDir()})
		if code, body := r.get("/ipxe?mac=52-54-00-00-00-01"); code != 200 || !strings.HasPrefix(body, "#!ipxe") {
			t.Fatalf("GET /ipxe = %d %q", code, body)
		}
		// Its installer reports: the timeline's last stage and the state.
		resp, err := http.Post(r.url+"/v1/machines/52:54:00:00:00:01/installed", "text/plain", strings.NewReader("done"))
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST installed = %v %v", resp, err)
		}
		resp.Body.Close()
		if code, body := r.get("/v1/machines/52:54:00:00:00:01"); code != 200 || !strings.Contains(body, `"installed": true`) || !strings.Contains(body, `"stage": "installed"`) {
			t.Errorf("/v1/machines/<mac> = %d %s", code, body)
		}
		code, body := r.get("/status")
		var st struct {
			Served      struct{ Revision string }
			LastAttempt struct{ Result string } `json:"last_attempt"`
		}
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Served.Revision == "" {
			t.Fatalf("/status = %d %v: %s", code, err, body)
		}
		// After start: its cleanup stops the browser first, so the daemon's
		// shutdown does not wait for the sockets Chromium opens ahead.
		b := browsertest.New(t)
		tab := b.Open(t, r.url+"/")
		if got := tab.Text(t, "#served-revision"); got != st.Served.Revision {
			t.Errorf("page shows served revision %q, /status %q", got, st.Served.Revision)
		}
		if got := tab.Text(t, "#reload-result"); got != "ok: "+st.LastAttempt.Result || st.LastAttempt.Result != reconcile.ResultServed {
			t.Errorf("page shows reload result %q, /status %q", got, st.LastAttempt.Result)
		}
		if got := tab.Text(t, "h1"); got != "pxeops v-test" {
			t.Errorf("heading %q", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.mac"); got != "52:54:00:00:00:01" {
			t.Errorf("machine row MAC %q, want the machine that booted", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.stage"); got != "installed" {
			t.Errorf("machine row stage %q, want installed", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.state"); got != "installed" {
			t.Errorf("machine row state %q, want installed", got)
		}
		if got := tab.Text(t, "#machines tbody tr:first-child td.group"); got != "g" {
			t.Errorf("machine row group %q, want g", got)
		}
		tab.Screenshot(t, t.ArtifactDir(), "status-page-daemon")
		checkPage(t, tab, r.url+"/")
	})
}

func mustMAC(t *testing.T, s string) timeline.MAC {
	t.Helper()
	m, ok := timeline.ParseMAC(s)
	if !ok {
		t.Fatalf("bad MAC %q", s)
	}
	return m
}
