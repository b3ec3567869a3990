package updater_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

// The updater proposes and pushes through the git source's own clone
// (one clone per remote), while the source keeps fetching in it: its
// shallow fetch and the updater's branch fetch, commit and push share
// the clone's lock (run under -race), and neither breaks the other.
func TestSyncSharesTheSourceClone(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	state := t.TempDir()
	g, err := source.NewGit(source.GitOptions{URL: remote.FileURL(), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Once(ctx); err != nil { // a shallow fetch of main
		t.Fatal(err)
	}

	stop, done := make(chan struct{}), make(chan error)
	go func() { // the remote moves and the source fetches all the while
		for i := 0; ; i++ {
			if i%4 == 0 {
				remote.Commit("unrelated", map[string]string{"notes.txt": strconv.Itoa(i)})
			}
			if _, err := g.Once(ctx); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				t.Logf("source checks while the updater worked: %d", i+1)
				done <- nil
				return
			default:
			}
		}
	}()
	u := newUpdater(t)
	var repo *propose.Repo
	for range 5 { // passes, as serve runs them: each opens the repository anew
		var err error
		repo, err = propose.Open(ctx, propose.Options{Location: remote.FileURL(), Ref: "main", Clone: g.Clone()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := u.Sync(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if st := res["flatcar-stable"]; st.Error != "" || st.State == updater.StateProposed && !st.Pushed {
			t.Fatalf("status %+v", st)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("source check while the updater worked: %v", err)
	}
	if got := remote.Git("--git-dir", remote.Bare, "rev-parse", branch+"^"); got != repo.Base() {
		t.Errorf("pushed %s on top of %s, want %s", branch, got, repo.Base())
	}
	// One clone in the state dir, and the source still reads from it.
	if entries, _ := os.ReadDir(state); len(entries) != 1 || entries[0].Name() != filepath.Base(source.CloneDir(state)) {
		t.Errorf("state dir holds %v, want only the source's clone", entries)
	}
	main := remote.Git("--git-dir", remote.Bare, "rev-parse", "main")
	if rev, err := g.Once(ctx); err != nil || rev.ID != main {
		t.Errorf("source after the updater pushed: %v, %v; want %s", rev.ID, err, main)
	}

	// A clone of another remote is not used for this one.
	other := fleet(t, rel)
	if _, err := propose.Open(ctx, propose.Options{Location: other.FileURL(), Ref: "main", Clone: g.Clone()}); err == nil || !strings.Contains(err.Error(), "shared clone follows") {
		t.Errorf("another remote through the source's clone: %v", err)
	}
}

// A --path that leaves the repository is refused, as the source refuses
// it, not clamped to the top.
func TestOpenRepoRefusesPathOutside(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	for _, p := range []string{"..", "../x", "a/../../x", "/abs"} {
		_, err := propose.Open(context.Background(), propose.Options{Location: remote.Work, Ref: "main", Path: p})
		if err == nil || !strings.Contains(err.Error(), "a directory inside the repository") {
			t.Errorf("--path %q: %v", p, err)
		}
		if _, err := source.NewGit(source.GitOptions{URL: remote.FileURL(), StateDir: t.TempDir(), Path: p}); err == nil {
			t.Errorf("source --path %q accepted", p)
		}
	}
}
