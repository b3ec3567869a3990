package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/gittest"
)

func groupFile(profile string) string {
	return "profile: " + profile + "\nselector:\n  mac: 52:54:00:00:00:01\n"
}

func newGit(t *testing.T, url, stateDir string, mod ...func(*GitOptions)) *Git {
	t.Helper()
	o := GitOptions{URL: url, Ref: "main", StateDir: stateDir, Poll: time.Hour}
	for _, m := range mod {
		m(&o)
	}
	g, err := NewGit(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func read(t *testing.T, rev Revision, name string) string {
	t.Helper()
	b, err := fs.ReadFile(rev.FS, name)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// Commits are followed, trees come from the commit (not a work tree),
// force-pushes to older commits are followed too.
func TestGitFollowsCommitsAndForcePushes(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a"), "README.md": "hello"})
	url, _ := r.Daemon()
	g := newGit(t, url, t.TempDir())
	ctx := context.Background()

	rev, err := g.Once(ctx)
	if err != nil || rev.ID != c1 || read(t, rev, "groups/g.yaml") != groupFile("a") {
		t.Fatalf("first check: %s %v, want %s", rev.ID, err, c1)
	}
	c2 := r.Commit("two", map[string]string{"groups/g.yaml": groupFile("b")})
	rev2, err := g.Once(ctx)
	if err != nil || rev2.ID != c2 || read(t, rev2, "groups/g.yaml") != groupFile("b") {
		t.Fatalf("second check: %s %v, want %s", rev2.ID, err, c2)
	}
	if read(t, rev, "groups/g.yaml") != groupFile("a") {
		t.Errorf("an earlier revision changed under its reader")
	}
	r.Git("reset", "-q", "--hard", c1)
	r.Git("push", "-q", "--force", "origin", "main")
	rev3, err := g.Once(ctx)
	if err != nil || rev3.ID != c1 || read(t, rev3, "groups/g.yaml") != groupFile("a") {
		t.Fatalf("after force-push to %s: %s %v", c1, rev3.ID, err)
	}
}

// --path picks a subdirectory; a ref can be a tag or a fixed commit.
func TestGitPathTagsAndCommits(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"fleet/groups/g.yaml": groupFile("a")})
	r.Git("tag", "-a", "-m", "release", "v1")
	r.Git("push", "-q", "origin", "v1")
	r.Commit("two", map[string]string{"fleet/groups/g.yaml": groupFile("b")})
	for _, c := range []struct{ ref, want string }{{"v1", groupFile("a")}, {c1, groupFile("a")}, {"main", groupFile("b")}} {
		g := newGit(t, r.FileURL(), t.TempDir(), func(o *GitOptions) { o.Ref, o.Path = c.ref, "fleet" })
		rev, err := g.Once(context.Background())
		if err != nil || read(t, rev, "groups/g.yaml") != c.want {
			t.Errorf("ref %s: %v, groups/g.yaml = %q", c.ref, err, read(t, rev, "groups/g.yaml"))
		}
	}
}

// Unreachable remotes and vanished refs are errors that keep nothing
// from serving; a restart serves the kept revision before the network
// answers; a corrupt clone is replaced.
func TestGitFailuresAndRestart(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a")})
	url, stop := r.Daemon()
	state := t.TempDir()
	g := newGit(t, url, state)
	if _, err := g.Once(context.Background()); err != nil {
		t.Fatal(err)
	}

	r.Git("push", "-q", "origin", "main:gone")
	gone := newGit(t, url, t.TempDir(), func(o *GitOptions) { o.Ref = "gone" })
	if _, err := gone.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Git("push", "-q", "origin", ":gone")
	if _, err := gone.Once(context.Background()); err == nil || !strings.Contains(err.Error(), `ref "gone" not found`) {
		t.Errorf("deleted branch: %v", err)
	}

	stop()
	if _, err := g.Once(context.Background()); err == nil || !strings.Contains(err.Error(), "ls-remote") {
		t.Errorf("unreachable remote: %v", err)
	}
	// Restart with the remote still down: the kept revision is served at once.
	restarted := newGit(t, url, state)
	got := make(chan Revision, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go restarted.Run(ctx, func(rev Revision) { got <- rev })
	select {
	case rev := <-got:
		if rev.ID != c1 {
			t.Errorf("restart served %s, want %s", rev.ID, c1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restart served nothing while the remote was down")
	}
	deadline := time.Now().Add(10 * time.Second)
	for restarted.State().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("state does not report the unreachable remote: %+v", restarted.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()

	// A clone whose objects are gone is replaced on the next check.
	url2, _ := r.Daemon()
	if err := os.RemoveAll(filepath.Join(state, "repo.git", "objects")); err != nil {
		t.Fatal(err)
	}
	c2 := r.Commit("two", map[string]string{"groups/g.yaml": groupFile("b")})
	fresh := newGit(t, url2, state)
	if rev, err := fresh.Once(context.Background()); err != nil || rev.ID != c2 {
		t.Errorf("after corrupting the clone: %s %v, want %s", rev.ID, err, c2)
	}
}

// A burst of triggers (webhooks) is one remote check.
func TestGitTriggerBurstIsOneCheck(t *testing.T) {
	r := gittest.New(t)
	r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a")})
	g := newGit(t, r.FileURL(), t.TempDir())
	revs := make(chan Revision, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx, func(rev Revision) { revs <- rev })
	<-revs
	before := g.State().Checks
	c2 := r.Commit("two", map[string]string{"groups/g.yaml": groupFile("b")})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(g.Trigger)
	}
	wg.Wait()
	select {
	case rev := <-revs:
		if rev.ID != c2 {
			t.Errorf("triggered revision %s, want %s", rev.ID, c2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("trigger did not fetch")
	}
	time.Sleep(500 * time.Millisecond) // room for a wrongly queued second check
	if n := g.State().Checks - before; n != 1 {
		t.Errorf("100 triggers made %d checks, want 1", n)
	}
}

func TestIsGitURL(t *testing.T) {
	for s, want := range map[string]bool{
		"https://git.example/fleet.git": true, "git@git.example:fleet.git": true, "ssh://git@h/x": true,
		"file:///srv/fleet.git": true, "examples/quickstart": false, "/srv/fleet": false, "./a@b:c/d": false,
	} {
		if IsGitURL(s) != want {
			t.Errorf("IsGitURL(%q) = %v", s, !want)
		}
	}
	if got := Redact("https://user:secret@git.example/fleet.git"); strings.Contains(got, "secret") {
		t.Errorf("Redact kept the secret: %s", got)
	}
}

// A state dir made for another URL follows --source after a restart.
func TestGitFollowsANewURL(t *testing.T) {
	old, moved := gittest.New(t), gittest.New(t)
	old.Commit("old", map[string]string{"groups/g.yaml": groupFile("old")})
	c := moved.Commit("moved", map[string]string{"groups/g.yaml": groupFile("new")})
	state := t.TempDir()
	if _, err := newGit(t, old.FileURL(), state).Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := newGit(t, moved.FileURL(), state)
	if _, err := g.local(); err != nil {
		t.Fatal(err)
	}
	if rev, err := g.Once(context.Background()); err != nil || rev.ID != c {
		t.Errorf("after the URL changed: %s %v, want %s", rev.ID, err, c)
	}
}

func TestNewGitRejectsBadOptions(t *testing.T) {
	for _, o := range []GitOptions{
		{URL: "file:///x", StateDir: t.TempDir(), Path: "../outside"},
		{URL: "file:///x", StateDir: t.TempDir(), Path: "/etc"},
		{URL: "file:///x"},      // no state dir
		{StateDir: t.TempDir()}, // no URL
	} {
		if _, err := NewGit(o); err == nil {
			t.Errorf("NewGit(%+v) accepted", o)
		}
	}
	g, err := NewGit(GitOptions{URL: "file:///x", StateDir: t.TempDir(), Path: "./fleet/"})
	if err != nil || g.opts.Path != "fleet" {
		t.Errorf("--path ./fleet/: %v, %q", err, g.opts.Path)
	}
}
