package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/gentree"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

// BenchmarkEditToServed measures, in a 10,000-group tree on disk watched
// by the directory source, the time from writing one group file to the
// reconciler serving the new answer for it: fsnotify, debounce, rescan,
// load, validate, render and swap. Target: under 500 ms.
func BenchmarkEditToServed(b *testing.B) {
	dir := b.TempDir()
	if err := gentree.Write(dir, 10000, 100); err != nil {
		b.Fatal(err)
	}
	r := New(render.Options{ServerURL: "http://pxe.test"}, nil, nil)
	src, err := source.NewDir(dir, source.DirOptions{Watch: true, Poll: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	go src.Run(ctx, r.Offer)
	m := schema.Machine{MAC: gentree.MAC(1234)}
	servedProfile := func() string {
		if snap := r.Snapshot(); snap != nil {
			if g := snap.Lookup(&m); g != nil {
				return g.Profile.ID
			}
		}
		return ""
	}
	for servedProfile() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	file := filepath.Join(dir, "groups/node01234.yaml")
	b.ResetTimer()
	for i := range b.N {
		want := fmt.Sprintf("p%03d", i%50+50)
		body := fmt.Sprintf("profile: %s\nselector:\n  mac: %s\nmetadata:\n  hostname: node01234\n", want, gentree.MAC(1234))
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for servedProfile() != want {
			if time.Now().After(deadline) {
				b.Fatalf("edit %d never served; last attempt %+v", i, r.Status().LastAttempt)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
