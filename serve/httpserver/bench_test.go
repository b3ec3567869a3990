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
	return generatedSnapshotWith(b, revision, nil)
}

// generatedSnapshotWith is generatedSnapshot with edit applied to the
// files first.
func generatedSnapshotWith(b *testing.B, revision string, edit func(map[string][]byte)) *render.Snapshot {
	files := gentree.Files(10000, 100)
	if edit != nil {
		edit(files)
	}
	fsys := fstest.MapFS{}
	for name, data := range files {
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
	benchIPXEFor(b, snap, opts, gentree.MAC(4242))
}

func benchIPXEFor(b *testing.B, snap *render.Snapshot, opts Options, mac string) {
	h, err := New(fixedSnapshots{snap}, opts)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/ipxe?mac="+mac, nil)
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

// BenchmarkIPXERollout is BenchmarkIPXEHandler without a rollout, then
// with the generated image rolling out 4116.0.0 to 50 % of the machines,
// for a machine on either side: run side by side, the difference is what
// choosing the side costs a request (one SHA-256 of ~40 bytes).
func BenchmarkIPXERollout(b *testing.B) {
	plain := generatedSnapshot(b, "")
	rolling := generatedSnapshotWith(b, "", func(files map[string][]byte) {
		files["images/flatcar-stable.yaml"] = append(files["images/flatcar-stable.yaml"], []byte(`rollout:
  version: 4116.0.0
  share: 50%
  kernel: {url: /assets/flatcar/4116.0.0/flatcar_production_pxe.vmlinuz}
  initrd: [{url: /assets/flatcar/4116.0.0/flatcar_production_pxe_image.cpio.gz}]
`)...)
	})
	// The first generated machine on each side, past 4242 (the others' MAC).
	side := func(rollout bool) string {
		for i := 4242; ; i++ {
			if render.RolloutSide("flatcar-stable", "4116.0.0", gentree.MAC(i), 5000) == rollout {
				return gentree.MAC(i)
			}
		}
	}
	opts := Options{ServerURL: "http://pxe.test", Loaders: http.NotFoundHandler()}
	b.Run("rollout=none", func(b *testing.B) { benchIPXEFor(b, plain, opts, gentree.MAC(4242)) })
	b.Run("rollout=pinned", func(b *testing.B) { benchIPXEFor(b, rolling, opts, side(false)) })
	b.Run("rollout=new", func(b *testing.B) { benchIPXEFor(b, rolling, opts, side(true)) })
}
