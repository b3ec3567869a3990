package httpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The status page is an admin endpoint: at exactly / (GET and HEAD) on
// the admin handler, or on the one port without an admin listener; the
// boot port of a split answers 404, and so does / with no page.
func TestPageRoute(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("the page")) })
	opts := Options{ServerURL: "http://pxe.test", Page: page}
	snaps := fixedSnapshots{testSnapshot(t)}
	boot, admin, err := NewSplit(snaps, opts)
	must(t, err)
	whole, err := New(snaps, opts)
	must(t, err)
	none, err := New(snaps, Options{ServerURL: "http://pxe.test"})
	must(t, err)
	for _, c := range []struct {
		name string
		h    http.Handler
		root int
	}{
		{"boot port with admin split", boot, 404},
		{"admin port", admin, 200},
		{"one port (no admin listener)", whole, 200},
		{"no page", none, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, e := range []struct {
				method, target string
				want           int
			}{
				{"GET", "/", c.root},
				{"GET", "/?refresh", c.root},
				{"HEAD", "/", c.root},
				{"POST", "/", 404},
				{"GET", "/x", 404},
				{"GET", "/index.html", 404},
			} {
				w := httptest.NewRecorder()
				h := c.h
				h.ServeHTTP(w, httptest.NewRequest(e.method, e.target, nil))
				if w.Code != e.want {
					t.Errorf("%s %s = %d, want %d: %s", e.method, e.target, w.Code, e.want, w.Body)
				}
				if w.Code == 200 && e.method == "GET" && w.Body.String() != "the page" {
					t.Errorf("%s %s body %q, want the page's", e.method, e.target, w.Body)
				}
				if w.Code == 404 && strings.Contains(w.Body.String(), "the page") {
					t.Errorf("%s %s: a 404 with the page's body", e.method, e.target)
				}
			}
		})
	}
	// Counted under its own endpoint name.
	if body := get(t, admin, "/metrics").Body.String(); !strings.Contains(body, `pxeops_http_requests_total{code="200",endpoint="page"}`) {
		t.Errorf("the page's requests missing from /metrics:\n%s", body)
	}
}
