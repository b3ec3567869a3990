package httpserver

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/gentree"
	"github.com/pxeops/pxeops/serve/access"
)

// BenchmarkAccess is /ipxe and /config through the whole handler in a
// 10,000-group snapshot, with the access rule off (auto, no secrets:
// today's behaviour) and on (machine) by each of its paths: a neighbour
// on the segment (the table in memory; serve/neighbour's benchmarks
// give the kernel read), a routed script (binding, token issued and
// added to the config URL), a routed config (token verified).
func BenchmarkAccess(b *testing.B) {
	snap := generatedSnapshot(b, "0123456789abcdef0123456789abcdef01234567")
	mac := gentree.MAC(4242)
	const onLink, routed = "192.0.2.1", "10.9.0.5"
	bindings := access.NewBindings(time.Hour, 0)
	bindings.Learn(mac, netip.MustParseAddr(routed), time.Now())
	handler := func(mode access.Mode) http.Handler {
		h, err := New(fixedSnapshots{snap}, Options{ServerURL: "http://pxe.test",
			Access: AccessOptions{Mode: mode, Neighbours: neighbours{onLink: mac}, Bindings: bindings}})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	off, on := handler(access.Auto), handler(access.Machine)
	// A routed machine's config URL, with its token, from its script.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/ipxe?mac="+mac, nil)
	r.RemoteAddr = routed + ":4000"
	on.ServeHTTP(w, r)
	m := regexp.MustCompile(`ignition\.config\.url=http://pxe\.test(\S+)`).FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil || !strings.Contains(m[1], "pxeops.token=") {
		b.Fatalf("routed script: %d %s", w.Code, w.Body)
	}
	tokened := strings.Replace(m[1], "/ignition?", "/config?", 1)
	for _, c := range []struct {
		name, from, target string
		h                  http.Handler
	}{
		{"ipxe/off", onLink, "/ipxe?mac=" + mac, off},
		{"ipxe/neighbour", onLink, "/ipxe?mac=" + mac, on},
		{"ipxe/binding", routed, "/ipxe?mac=" + mac, on},
		{"config/off", onLink, "/config?mac=" + mac, off},
		{"config/neighbour", onLink, "/config?mac=" + mac, on},
		{"config/token", routed, tokened, on},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", c.target, nil)
			req.RemoteAddr = c.from + ":4000"
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
			}
		})
	}
}
