package httpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/gentree"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// generatedSnapshot is gentree's fleet of 10,000 groups over 100 profiles.
func generatedSnapshot(b *testing.B, revision string) *render.Snapshot {
	fsys := fstest.MapFS{}
	for name, data := range gentree.Files(10000, 100) {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	snap, diags := render.Load(context.Background(), fsys, render.Options{ServerURL: "http://pxe.test", Revision: revision})
	if snap == nil {
		b.Fatal(diags)
	}
	return snap
}

// BenchmarkIPXEHandler is one /ipxe request through the whole handler
// (routing, metrics, query parsing, lookup, script, logging discarded) in
// a 10,000-group snapshot, without the network.
func BenchmarkIPXEHandler(b *testing.B) {
	// With the loaders' route in front of the mux, as serve runs where
	// Debian's shim and GRUB are installed.
	benchIPXE(b, generatedSnapshot(b, ""), Options{ServerURL: "http://pxe.test", Loaders: http.NotFoundHandler()})
}

func benchIPXE(b *testing.B, snap *render.Snapshot, opts Options) {
	h, err := New(fixedSnapshots{snap}, opts)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/ipxe?mac="+gentree.MAC(4242), nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkIPXETimeline is BenchmarkIPXEHandler without and with the
// boot timeline recording each answer: run side by side, the difference
// is the timeline's cost per request.
func BenchmarkIPXETimeline(b *testing.B) {
	snap := generatedSnapshot(b, "")
	for _, name := range []string{"timeline=off", "timeline=on"} {
		b.Run(name, func(b *testing.B) {
			opts := Options{ServerURL: "http://pxe.test", Loaders: http.NotFoundHandler()}
			if name == "timeline=on" {
				opts.Timeline = timeline.New(timeline.Options{})
			}
			benchIPXE(b, snap, opts)
		})
	}
}
