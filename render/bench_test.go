package render

import (
	"context"
	"fmt"
	"github.com/pxeops/pxeops/schema"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/gentree"
)

// BenchmarkLoad10k loads, validates and renders a tree of 10,000 groups
// and 100 profiles from disk: the work of one reload. Besides time and
// allocations it reports the heap one snapshot keeps alive. Peak memory of
// a whole load is measured on the pxeops check process (BENCHMARKS.md).
func BenchmarkLoad10k(b *testing.B) {
	dir := b.TempDir()
	if err := gentree.Write(dir, 10000, 100); err != nil {
		b.Fatal(err)
	}
	fsys := os.DirFS(dir)
	b.ReportAllocs()
	var snap *Snapshot
	for b.Loop() {
		s, diags := Load(context.Background(), fsys, Options{ServerURL: "http://pxe.test:8080"})
		if s == nil || diags.Errors() > 0 {
			b.Fatalf("generated tree invalid: %v", diags)
		}
		snap = s
	}
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	b.ReportMetric(float64(sample[0].Value.Uint64())/(1<<20), "MiB-live-heap")
	runtime.KeepAlive(snap)
}

func benchSnapshot(b *testing.B) *Snapshot {
	b.Helper()
	snap, diags := Load(context.Background(), mapFS(gentree.Files(10000, 100)), Options{ServerURL: "http://pxe.test:8080"})
	if snap == nil {
		b.Fatal(diags)
	}
	return snap
}

// BenchmarkLookup is the per-request index lookup by MAC in a 10,000-group
// snapshot. Target: under 1 µs, no allocations.
func BenchmarkLookup(b *testing.B) {
	snap := benchSnapshot(b)
	m := schema.Machine{MAC: gentree.MAC(4242), Arch: "x86_64", Hostname: "whatever"}
	b.ReportAllocs()
	for b.Loop() {
		if snap.Lookup(&m) == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkLoader is the loader decision for every DHCP packet: a MAC
// lookup in a 10,000-group snapshot. Target: under 1 µs, no allocations.
func BenchmarkLoader(b *testing.B) {
	snap := benchSnapshot(b)
	mac := gentree.MAC(4242)
	b.ReportAllocs()
	for b.Loop() {
		if snap.Loader(mac, "x86_64") != LoaderIPXE {
			b.Fatal("not ipxe")
		}
	}
}

// BenchmarkLookupScript is lookup plus the full iPXE script. Target:
// under 20 µs. "rendered" runs the argument templates for every request
// (a default group whose arguments read the machine's MAC); "same" is a
// MAC group whose script is the same for every request, rendered once.
func BenchmarkLookupScript(b *testing.B) {
	b.Run("rendered", func(b *testing.B) {
		files := gentree.Files(10000, 100)
		files["groups/default.yaml"] = []byte("profile: p000\nmetadata: {hostname: any}\n")
		snap, diags := Load(context.Background(), mapFS(files), Options{ServerURL: "http://pxe.test:8080"})
		if snap == nil {
			b.Fatal(diags)
		}
		m := schema.Machine{MAC: "52:54:ff:00:00:01", Arch: "x86_64"}
		benchScript(b, snap, &m)
	})
	b.Run("same", func(b *testing.B) {
		m := schema.Machine{MAC: gentree.MAC(4242), Arch: "x86_64"}
		benchScript(b, benchSnapshot(b), &m)
	})
}

func benchScript(b *testing.B, snap *Snapshot, m *schema.Machine) {
	b.ReportAllocs()
	for b.Loop() {
		g := snap.Lookup(m)
		if err := snap.WriteScript(io.Discard, g, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupConfig is lookup plus the machine's Ignition config
// (YAML template rendered and converted to JSON). "rendered" renders it
// for every request (a default group and a template that reads the
// MAC); "same" is gentree's, whose template reads only metadata, so it
// is rendered once per group and reused.
func BenchmarkLookupConfig(b *testing.B) {
	b.Run("rendered", func(b *testing.B) {
		files := gentree.Files(10000, 100)
		files["groups/default.yaml"] = []byte("profile: p000\nmetadata: {hostname: any}\n")
		files["templates/node.ign.yaml"] = append(files["templates/node.ign.yaml"], "    - path: /etc/mac\n      contents:\n        source: \"data:,{{ .MAC }}\"\n"...)
		snap, diags := Load(context.Background(), mapFS(files), Options{ServerURL: "http://pxe.test:8080"})
		if snap == nil {
			b.Fatal(diags)
		}
		benchConfig(b, snap, &schema.Machine{MAC: "52:54:ff:00:00:01"})
	})
	b.Run("same", func(b *testing.B) {
		benchConfig(b, benchSnapshot(b), &schema.Machine{MAC: gentree.MAC(4242)})
	})
}

func benchConfig(b *testing.B, snap *Snapshot, m *schema.Machine) {
	b.ReportAllocs()
	for b.Loop() {
		g := snap.Lookup(m)
		if err := snap.WriteConfig(io.Discard, g, m); err != nil {
			b.Fatal(err)
		}
	}
}

func mapFS(files map[string][]byte) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// BenchmarkReloadOneChange is the reload after a one-file edit of the
// 10,000-group tree, from memory, with the daemon's cache warm: what is
// left of a reload once unchanged files are not decoded again.
func BenchmarkReloadOneChange(b *testing.B) {
	fsys := mapFS(gentree.Files(10000, 100))
	cache := schema.NewCache()
	opts := Options{ServerURL: "http://pxe.test:8080", Cache: cache}
	if s, diags := Load(context.Background(), fsys, opts); s == nil {
		b.Fatal(diags)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		fsys["groups/node01234.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("profile: p%03d\nselector:\n  mac: %s\nmetadata: {hostname: n}\n", i%100, gentree.MAC(1234)))}
		if s, diags := Load(context.Background(), fsys, opts); s == nil {
			b.Fatal(diags)
		}
	}
}
