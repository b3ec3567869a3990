package propose_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/source/propose"
)

var author = object.Signature{Name: "pxeops", Email: "pxeops@example.test", When: time.Unix(1700000000, 0)}

func open(t *testing.T, remote *gittest.Remote, path string) *propose.Repo {
	t.Helper()
	r, err := propose.Open(context.Background(), propose.Options{Location: remote.FileURL(), Ref: "main", Path: path, CloneDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// show reads a file at a ref of the remote with the git binary: what a
// reviewer fetching the branch sees.
func show(t *testing.T, remote *gittest.Remote, spec string) string {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", remote.Bare, "show", spec).CombinedOutput()
	if err != nil {
		t.Fatalf("git show %s: %v\n%s", spec, err, out)
	}
	return string(out)
}

// Several files, new ones in a new directory and one replaced, land in
// one commit on the branch, pushed; the same proposal again commits
// nothing; git itself reads the tree back (fsck: entries in git's order).
func TestProposeSeveralFiles(t *testing.T) {
	remote := gittest.New(t)
	remote.Commit("init", map[string]string{"fleet/groups/a.yaml": "profile: x\n", "fleet/groups-old/b.yaml": "profile: y\n", "README": "hi\n"})
	repo := open(t, remote, "fleet")
	p := propose.Proposal{
		Branch: "pxeops/discovered", Message: "two machines", Author: author, Push: true,
		Files: []propose.File{
			{Path: "groups/new-1.yaml", Content: []byte("one\n")},
			{Path: "groups/a.yaml", Content: []byte("replaced\n")},
			{Path: "profiles/deep/new.yaml", Content: []byte("deep\n")},
		},
	}
	out, err := repo.Propose(context.Background(), p)
	if err != nil || !out.Changed || !out.Pushed {
		t.Fatalf("Propose = %+v, %v", out, err)
	}
	for spec, want := range map[string]string{
		"pxeops/discovered:fleet/groups/new-1.yaml":      "one\n",
		"pxeops/discovered:fleet/groups/a.yaml":          "replaced\n",
		"pxeops/discovered:fleet/profiles/deep/new.yaml": "deep\n",
		"pxeops/discovered:fleet/groups-old/b.yaml":      "profile: y\n",
		"main:fleet/groups/a.yaml":                       "profile: x\n",
	} {
		if got := show(t, remote, spec); got != want {
			t.Errorf("%s = %q, want %q", spec, got, want)
		}
	}
	if out, err := exec.Command("git", "--git-dir", remote.Bare, "fsck", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}

	again, err := open(t, remote, "fleet").Propose(context.Background(), p)
	if err != nil || again.Changed || again.Commit != out.Commit {
		t.Fatalf("second Propose = %+v, %v; want commit %s unchanged", again, err, out.Commit)
	}
	p.Files[0].Content = []byte("changed\n")
	third, err := open(t, remote, "fleet").Propose(context.Background(), p)
	if err != nil || !third.Changed || third.Commit == out.Commit {
		t.Fatalf("changed Propose = %+v, %v", third, err)
	}
}

func TestProposeRefuses(t *testing.T) {
	remote := gittest.New(t)
	remote.Commit("init", map[string]string{"groups/a.yaml": "profile: x\n", "link/x": "y\n"})
	remote.Git("rm", "-q", "-r", "link")
	if out, err := exec.Command("ln", "-s", "groups", remote.Work+"/link").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	remote.Commit("a symlink", nil)
	repo := open(t, remote, "")
	for _, c := range []struct {
		branch string
		files  []propose.File
		want   string
	}{
		{"main", []propose.File{{Path: "groups/b.yaml"}}, "served ref"},
		{"x", nil, "no files"},
		{"x", []propose.File{{Path: "../escape.yaml"}}, "clean relative path"},
		{"x", []propose.File{{Path: "/abs.yaml"}}, "clean relative path"},
		{"x", []propose.File{{Path: "groups/./b.yaml"}}, "clean relative path"},
		{"x", []propose.File{{Path: `groups\b.yaml`}}, "clean relative path"},
		{"x", []propose.File{{Path: "groups/b\n.yaml"}}, "clean relative path"},
		{"x", []propose.File{{Path: ".git/config"}}, ".git"},
		{"x", []propose.File{{Path: "groups/.GIT/hooks"}}, ".git"},
		{"x", []propose.File{{Path: "groups/b.yaml"}, {Path: "groups/b.yaml"}}, "given twice"},
		{"x", []propose.File{{Path: "groups"}, {Path: "groups/b.yaml"}}, "file of the same proposal"},
		{"x", []propose.File{{Path: "groups/a.yaml/c"}}, "groups/a.yaml is not a directory"},
		{"x", []propose.File{{Path: "groups"}}, "groups is not a regular file"},
		{"x", []propose.File{{Path: "link"}}, "link is not a regular file"},
		{"bad..branch", []propose.File{{Path: "groups/b.yaml"}}, "branch"},
	} {
		_, err := repo.Propose(context.Background(), propose.Proposal{Branch: c.branch, Files: c.files, Author: author})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: err = %v, want %q", c.branch, c.files, err, c.want)
		}
	}
}
