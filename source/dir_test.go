package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"github.com/pxeops/pxeops/schema"
)

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A revision is a snapshot: later writes to disk do not show through it,
// files outside the schema's directories (a keyring) are read from disk,
// and loading it gives what loading the directory itself gives.
func TestRevisionIsASnapshot(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pxeops.yaml", "omaha:\n  keyring: keys/fleet.asc\n")
	writeFile(t, dir, "keys/fleet.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
	writeFile(t, dir, "profiles/p.yaml", "kernel: /assets/k\n")
	writeFile(t, dir, "groups/g.yaml", "profile: p\n")
	writeFile(t, dir, "groups/sub/ignored.yaml", "profile: p\n")
	writeFile(t, dir, "groups/.hidden.yaml", "junk")
	d, err := NewDir(dir, DirOptions{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rev, err := d.scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, fromRev := schema.Load(context.Background(), rev.FS, nil)
	_, fromDisk := schema.Load(context.Background(), os.DirFS(dir), nil)
	if len(fromRev) != len(fromDisk) || fromRev.Errors() != 0 {
		t.Fatalf("revision: %v\ndisk: %v", fromRev, fromDisk)
	}
	for i := range fromRev {
		if fromRev[i] != fromDisk[i] {
			t.Errorf("diagnostic %d: revision %v, disk %v", i, fromRev[i], fromDisk[i])
		}
	}
	writeFile(t, dir, "groups/g.yaml", "profile: changed\n")
	data, err := fs.ReadFile(rev.FS, "groups/g.yaml")
	if err != nil || string(data) != "profile: p\n" {
		t.Errorf("revision shows a later write: %q, %v", data, err)
	}
	if _, err := fs.ReadFile(rev.FS, "groups/.hidden.yaml"); err == nil {
		t.Errorf("hidden file readable through the revision")
	}
	next, err := d.scan(nil)
	if err != nil || next.ID == rev.ID {
		t.Errorf("a changed file kept revision %s (%v)", rev.ID, err)
	}
	again, _ := d.scan(nil)
	if again.ID != next.ID {
		t.Errorf("an unchanged tree changed revision: %s then %s", next.ID, again.ID)
	}
}

// Run emits the first tree at once, then only trees that changed.
func TestRunEmitsChangesOnly(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "groups/g.yaml", "profile: p\n")
	d, err := NewDir(dir, DirOptions{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	revs := make(chan Revision, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, func(r Revision) { revs <- r }); close(done) }()
	first := <-revs
	time.Sleep(200 * time.Millisecond) // about ten rescans of an unchanged tree
	if len(revs) != 0 {
		t.Errorf("%d revisions emitted for an unchanged tree", len(revs))
	}
	writeFile(t, dir, "groups/g.yaml", "profile: q\n")
	select {
	case r := <-revs:
		if r.ID == first.ID {
			t.Errorf("same revision id after a change")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("change never emitted")
	}
	cancel()
	<-done
}

// Trigger rescans at once, where neither an event nor the rescan period
// would come for an hour.
func TestTriggerRescans(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "groups/g.yaml", "profile: p\n")
	d, err := NewDir(dir, DirOptions{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	revs := make(chan Revision, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx, func(r Revision) { revs <- r })
	first := <-revs
	writeFile(t, dir, "groups/g.yaml", "profile: q\n")
	d.Trigger()
	d.Trigger() // folds into the pending one
	select {
	case r := <-revs:
		if r.ID == first.ID {
			t.Errorf("same revision id after a change")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Trigger did not rescan")
	}
}

func TestNewDirRejectsNonDirectories(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, filepath.Dir(file), "f", "x")
	for _, p := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if _, err := NewDir(p, DirOptions{}); err == nil {
			t.Errorf("NewDir(%s) accepted", p)
		}
	}
}

// A named pipe in the tree is never opened: the load reports it at its
// file as an error of the tree (not a read to retry), and a keyring that
// is one is refused when read, at once.
func TestDirReportsFIFOs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "profiles/p.yaml", "kernel: /assets/k\n")
	writeFile(t, dir, "groups/g.yaml", "profile: p\n")
	fifotest.Mkfifo(t, filepath.Join(dir, "groups/fifo.yaml"))
	must(t, os.Mkdir(filepath.Join(dir, "keys"), 0o755))
	fifotest.Mkfifo(t, filepath.Join(dir, "keys/fleet.asc"))
	d, err := NewDir(dir, DirOptions{Poll: time.Hour})
	must(t, err)
	defer d.Close()
	fifotest.Returns(t, "scan and load", func() {
		rev, err := d.Once()
		must(t, err)
		_, diags := schema.Load(context.Background(), rev.FS, nil)
		want := "groups/fifo.yaml: error: is a named pipe (FIFO), not a regular file; config files must be regular files"
		if diags.Errors() != 1 || diags[0].String() != want || diags.Transient() {
			t.Errorf("diagnostics: %v\nwant %s", diags, want)
		}
		if _, err := fs.ReadFile(rev.FS, "keys/fleet.asc"); !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("keyring read through the revision: %v", err)
		}
		// A file replaced by a pipe between the walk's stat and the read.
		if _, err := d.read("keys/fleet.asc"); !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("read of a FIFO: %v", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
