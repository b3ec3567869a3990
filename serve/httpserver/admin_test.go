package httpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// With the admin endpoints split off, the boot handler answers only what
// machines need (and the probes); the admin handler answers the rest.
// Without the split, one handler answers everything, as before.
func TestAdminSplit(t *testing.T) {
	secret := "0123456789abcdef-secret"
	var fired atomic.Int32
	opts := Options{ServerURL: "http://pxe.test", WebhookSecret: []byte(secret), Trigger: func() { fired.Add(1) },
		Status: func() any { return map[string]string{"fleet": "state"} }}
	snaps := fixedSnapshots{testSnapshot(t)}
	boot, admin, err := NewSplit(snaps, opts)
	must(t, err)
	whole, err := New(snaps, opts)
	must(t, err)

	hook := func(h http.Handler) int {
		req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, c := range []struct {
		name              string
		h                 http.Handler
		ipxe, status, met int
		hook              int
		probes            int
	}{
		{"boot port with admin split", boot, 200, 404, 404, 404, 200},
		{"admin port", admin, 404, 200, 200, 202, 200},
		{"one port (no admin listener)", whole, 200, 200, 200, 202, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, e := range []struct {
				target string
				want   int
			}{
				{"/ipxe?mac=52:54:00:00:00:01", c.ipxe},
				{"/config?mac=52:54:00:00:00:01", c.ipxe},
				{"/boot.ipxe", c.ipxe},
				{"/status", c.status},
				{"/metrics", c.met},
				{"/healthz", c.probes},
				{"/readyz", c.probes},
			} {
				w := get(t, c.h, e.target)
				if w.Code != e.want {
					t.Errorf("GET %s = %d, want %d: %s", e.target, w.Code, e.want, w.Body)
				}
				if e.target == "/status" && w.Code == 200 && !strings.Contains(w.Body.String(), `"fleet": "state"`) {
					t.Errorf("/status body %q", w.Body)
				}
				if w.Code == 404 && strings.Contains(w.Body.String(), "/status") && c.name == "boot port with admin split" {
					t.Errorf("GET %s on the boot port points at /status, which it does not serve: %q", e.target, w.Body)
				}
			}
			if code := hook(c.h); code != c.hook {
				t.Errorf("POST /hooks/git = %d, want %d", code, c.hook)
			}
		})
	}
	if n := fired.Load(); n != 2 {
		t.Errorf("webhook fired %d times, want 2 (admin and one port)", n)
	}
	// Both count into the same metrics: a boot request shows on the admin port's /metrics.
	if body := get(t, admin, "/metrics").Body.String(); !strings.Contains(body, `pxeops_http_requests_total{code="200",endpoint="ipxe"}`) {
		t.Errorf("boot requests missing from the admin port's /metrics:\n%s", body)
	}
}
