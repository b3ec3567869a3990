package discover_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/reconcile/discover"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

var fleet = map[string]string{
	"pxeops.yaml":          "discovery:\n  profile: worker\n",
	"profiles/worker.yaml": "kernel: /assets/linux/vmlinuz\n",
	"groups/node1.yaml":    "profile: worker\nselector:\n  mac: 52:54:00:00:00:01\n",
}

var two = []discover.Machine{
	{MAC: "52:54:00:00:00:02", Arch: "x86_64", VendorClass: "PXEClient:Arch:00007:UNDI:003016", FirstSeen: time.Unix(1764580000, 0), LastSeen: time.Unix(1764580300, 0), Seen: 3},
	{MAC: "52:54:00:00:00:03", Relay: "10.0.0.1", FirstSeen: time.Unix(1764580000, 0), LastSeen: time.Unix(1764580000, 0), Seen: 1},
	{MAC: "52:54:00:00:00:01"}, // node1's
}

func pass(t *testing.T, remote *gittest.Remote, ms []discover.Machine) *discover.Report {
	t.Helper()
	ctx := context.Background()
	repo, err := propose.Open(ctx, propose.Options{Location: remote.FileURL(), Ref: "main", CloneDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := discover.Pass(ctx, repo, ms, discover.PassOptions{Author: object.Signature{Name: "pxeops", Email: "pxeops@example.test", When: time.Now()}, Push: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The check, against a real remote: two unknown machines give one
// branch with two files, which passes check as a git source of that
// branch loads it; a second pass (a fresh clone, the machines seen again
// later) adds nothing; main is never touched.
func TestPassRealRemote(t *testing.T) {
	remote := gittest.New(t)
	head := remote.Commit("fleet", fleet)
	rep := pass(t, remote, two)
	if !rep.Changed || !rep.Pushed || rep.Branch != "pxeops/discovered" {
		t.Fatalf("first pass: %+v", rep)
	}
	states := map[string]string{}
	for _, r := range rep.Results {
		states[r.MAC] = r.State
	}
	if states["52:54:00:00:00:02"] != discover.StateProposed || states["52:54:00:00:00:03"] != discover.StateProposed || states["52:54:00:00:00:01"] != discover.StateMatched {
		t.Fatalf("states %v", states)
	}
	out, err := exec.Command("git", "--git-dir", remote.Bare, "diff", "--name-status", "main", "pxeops/discovered").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if got := strings.TrimSpace(string(out)); got != "A\tgroups/discovered-52-54-00-00-00-02.yaml\nA\tgroups/discovered-52-54-00-00-00-03.yaml" {
		t.Fatalf("the branch changes:\n%s", got)
	}
	if n := strings.TrimSpace(gitOut(t, remote, "rev-list", "--count", "main..pxeops/discovered")); n != "1" {
		t.Fatalf("%s commits on the branch, want 1", n)
	}
	if got := strings.TrimSpace(gitOut(t, remote, "rev-parse", "main")); got != head {
		t.Fatalf("main moved: %s, was %s", got, head)
	}

	// As pxeops check --ref pxeops/discovered loads it.
	g, err := source.NewGit(source.GitOptions{URL: remote.FileURL(), Ref: "pxeops/discovered", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := g.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap, diags := render.Load(context.Background(), rev.FS, render.Options{ServerURL: schema.SampleServerURL})
	if snap == nil || diags.Errors() > 0 {
		t.Fatalf("the branch does not pass check: %v", diags)
	}
	for _, mac := range []string{"52:54:00:00:00:02", "52:54:00:00:00:03"} {
		if g := snap.Lookup(&schema.Machine{MAC: mac, Arch: "x86_64"}); g == nil || g.ID != "discovered-"+strings.ReplaceAll(mac, ":", "-") || g.Profile.ID != "worker" {
			t.Errorf("%s on the branch gets %v", mac, g)
		}
	}

	later := append([]discover.Machine(nil), two...)
	for i := range later[:2] {
		later[i].LastSeen = later[i].LastSeen.Add(time.Hour)
		later[i].Seen += 10
	}
	again := pass(t, remote, later)
	if again.Changed || again.Commit != rep.Commit {
		t.Fatalf("second pass: %+v; want commit %s unchanged", again, rep.Commit)
	}
	for _, r := range again.Results {
		if r.MAC != "52:54:00:00:00:01" && r.State != discover.StateAlreadyProposed {
			t.Errorf("second pass: %s %s", r.MAC, r.State)
		}
	}
	if got := strings.TrimSpace(gitOut(t, remote, "rev-parse", "pxeops/discovered")); got != rep.Commit {
		t.Fatalf("the branch moved to %s", got)
	}

	// Merged: the machines are matched now, and nothing is proposed.
	remote.Git("fetch", "-q", "origin")
	remote.Git("merge", "-q", "--ff-only", "origin/pxeops/discovered")
	remote.Git("push", "-q", "origin", "main")
	merged := pass(t, remote, later)
	if merged.Commit != "" || merged.Changed {
		t.Fatalf("after the merge: %+v", merged)
	}
	for _, r := range merged.Results {
		if r.State != discover.StateMatched {
			t.Errorf("after the merge: %s %s", r.MAC, r.State)
		}
	}
}

func gitOut(t *testing.T, remote *gittest.Remote, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"--git-dir", remote.Bare}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	return string(out)
}

// Without discovery.profile the branch holds the disabled form: check
// passes on it, warning at each file, and the machines still boot
// nothing.
func TestPassNoProfile(t *testing.T) {
	remote := gittest.New(t)
	files := map[string]string{}
	for k, v := range fleet {
		if k != "pxeops.yaml" {
			files[k] = v
		}
	}
	remote.Commit("fleet", files)
	rep := pass(t, remote, two)
	if !rep.Changed {
		t.Fatalf("%+v", rep)
	}
	g, err := source.NewGit(source.GitOptions{URL: remote.FileURL(), Ref: "pxeops/discovered", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := g.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap, diags := render.Load(context.Background(), rev.FS, render.Options{ServerURL: schema.SampleServerURL})
	if snap == nil || diags.Warnings() != 2 {
		t.Fatalf("the branch: %v", diags)
	}
	for _, d := range diags {
		if !strings.HasPrefix(d.File, "groups/discovered-52-54-00-00-00-0") || !strings.HasSuffix(d.File, ".yaml.disabled") {
			t.Errorf("warning %v", d)
		}
	}
	if g := snap.Lookup(&schema.Machine{MAC: "52:54:00:00:00:02", Arch: "x86_64"}); g != nil {
		t.Errorf("a disabled proposal boots %s", g.ID)
	}
}
