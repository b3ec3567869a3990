package updater_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"github.com/pxeops/pxeops/omaha/updater"
)

// A file mirrored before is reused after its signature checks out again;
// one that was altered on disk is downloaded anew.
func TestStoreReusesOnlyWhatStillVerifies(t *testing.T) {
	rel, keys := publishedRelease(t)
	store := &updater.Store{Dir: t.TempDir(), Backoff: time.Millisecond}
	path := omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"
	mirror := func() updater.Asset {
		t.Helper()
		a, err := store.Mirror(context.Background(), rel.URL+path, "vmlinuz", keys)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first := mirror()
	if again := mirror(); again != first || rel.Hits(path) != 1 {
		t.Fatalf("second mirror %+v (hits %d), want %+v from the store", again, rel.Hits(path), first)
	}
	kept := filepath.Join(store.Dir, first.Path())
	if err := os.WriteFile(kept, []byte("altered on disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if third := mirror(); third != first || rel.Hits(path) != 2 {
		t.Fatalf("after tampering: %+v (hits %d)", third, rel.Hits(path))
	}
	if body, _ := os.ReadFile(kept); string(body) != string(kernel) {
		t.Fatal("the altered file was not replaced")
	}
}

// Over the size cap, or with a signature over 64 KiB, nothing is kept and
// nothing is retried.
func TestStoreRefusesOversizedFilesAndSignatures(t *testing.T) {
	rel, keys := publishedRelease(t)
	dir := omahatest.Dir("stable", "2.0.0")
	store := &updater.Store{Dir: t.TempDir(), Backoff: time.Millisecond, MaxSize: int64(len(kernel) - 1)}
	_, err := store.Mirror(context.Background(), rel.URL+dir+"flatcar_production_pxe.vmlinuz", "vmlinuz", keys)
	if err == nil || !strings.Contains(err.Error(), "cap") || rel.Hits(dir+"flatcar_production_pxe.vmlinuz") != 1 {
		t.Errorf("over the cap: %v (%d fetches)", err, rel.Hits(dir+"flatcar_production_pxe.vmlinuz"))
	}
	rel.Put(dir+"big", initrd, make([]byte, 64<<10+1))
	store.MaxSize = 0
	if _, err := store.Mirror(context.Background(), rel.URL+dir+"big", "big", keys); err == nil || !strings.Contains(err.Error(), "signature larger") {
		t.Errorf("oversized signature: %v", err)
	}
	if files := servable(t, store.Dir); len(files) > 0 {
		t.Errorf("kept %v", files)
	}
}

// A kept file or signature replaced by a named pipe is not waited on: the
// file is downloaded again, as for a kept file that no longer verifies.
func TestStoreNeverWaitsOnKeptFIFOs(t *testing.T) {
	rel, keys := publishedRelease(t)
	store := &updater.Store{Dir: t.TempDir(), Backoff: time.Millisecond}
	path := omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"
	first, err := store.Mirror(context.Background(), rel.URL+path, "vmlinuz", keys)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(store.Dir, first.Path())
	for i, name := range []string{kept, kept + ".sig"} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		fifotest.Mkfifo(t, name)
		fifotest.Returns(t, "Mirror with "+filepath.Base(name)+" a FIFO", func() {
			a, err := store.Mirror(context.Background(), rel.URL+path, "vmlinuz", keys)
			if err != nil || a != first || rel.Hits(path) != 2+i {
				t.Errorf("mirror: %+v, %v (hits %d)", a, err, rel.Hits(path))
			}
		})
		if body, err := os.ReadFile(kept); err != nil || string(body) != string(kernel) {
			t.Fatalf("the kept file was not replaced: %v", err)
		}
	}
}

// publishedRelease is a release server offering 2.0.0, and a keyring
// trusting its signing key.
func publishedRelease(t *testing.T) (*omahatest.Release, *updater.Keyring) {
	t.Helper()
	rel := omahatest.New(t)
	publish(rel, "2.0.0", kernel, initrd)
	keys, err := updater.NewKeyring([]byte(rel.PublicKey()), []string{rel.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	return rel, keys
}
