package updater_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha/updater"
)

// setImage commits images/flatcar-stable.yaml with its channel and
// version changed, as an operator would.
func setImage(remote *gittest.Remote, channel, version string) {
	body := strings.NewReplacer("channel: stable", "channel: "+channel, "version: 1.0.0", "version: "+version).Replace(omahatest.ImageYAML)
	remote.Commit("image", map[string]string{"images/flatcar-stable.yaml": body})
}

// merge lands the open proposal on main, as a review would.
func merge(remote *gittest.Remote) {
	body := remote.Git("--git-dir", remote.Bare, "show", branch+":images/flatcar-stable.yaml")
	remote.Commit("merge the update", map[string]string{"images/flatcar-stable.yaml": body + "\n"})
}

func branchFile(remote *gittest.Remote) string {
	return remote.Git("--git-dir", remote.Bare, "show", branch+":images/flatcar-stable.yaml")
}

func lastMessage(remote *gittest.Remote) string {
	return remote.Git("--git-dir", remote.Bare, "log", "-1", "--format=%B", branch)
}

// The operator moved the image from alpha to stable and kept alpha's
// version: stable's current release is proposed though it is lower, and
// the message says it is a channel switch.
func TestSyncChannelSwitchProposesALowerRelease(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	rel.PublishOn("alpha", "4100.0.0", []byte("kernel alpha"), []byte("initrd alpha"))
	publish(rel, "4081.2.0", kernel, initrd)
	rel.SetChannelLatest("alpha", "4100.0.0")
	rel.SetChannelLatest("stable", "4081.2.0")
	setImage(remote, "stable", "4100.0.0")

	st := sync(t, newUpdater(t), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed || st.Action != updater.ActionChannelSwitch || st.Latest != "4081.2.0" {
		t.Fatalf("status %+v", st)
	}
	// Asked as a stable machine on the pin (noupdate), then for stable's
	// current release.
	if asked := rel.Asked(); !slices.Equal(asked, []string{"4100.0.0", "0.0.0"}) {
		t.Errorf("asked as %v", asked)
	}
	if msg := lastMessage(remote); !strings.HasPrefix(msg, "images/flatcar-stable.yaml: flatcar channel switch alpha → stable: 4100.0.0 → 4081.2.0\n") {
		t.Errorf("commit message:\n%s", msg)
	}
	if body := branchFile(remote); !strings.Contains(body, "version: 4081.2.0   # bumped") || !strings.Contains(body, sum(kernel)) {
		t.Errorf("branch file:\n%s", body)
	}
}

// On an unchanged channel a lower release is never proposed: the
// channel has the pinned version, so the service going back is not a
// switch.
func TestSyncNeverProposesALowerReleaseOnTheSameChannel(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	publish(rel, "4100.0.0", []byte("kernel new"), []byte("initrd new"))
	publish(rel, "4081.2.0", kernel, initrd)
	rel.SetLatest("4081.2.0")
	setImage(remote, "stable", "4100.0.0")

	st := sync(t, newUpdater(t), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateUpToDate || st.Action != "" {
		t.Fatalf("status %+v", st)
	}
	if refs := remote.Git("--git-dir", remote.Bare, "for-each-ref", "--format=%(refname)"); refs != "refs/heads/main" {
		t.Errorf("refs on the remote: %s", refs)
	}
	if asked := rel.Asked(); !slices.Equal(asked, []string{"4100.0.0"}) {
		t.Errorf("asked as %v", asked)
	}
}

// With stages, a new release opens a rollout beside the pinned version;
// a second pass adds nothing; a newer release replaces the rollout's.
func TestSyncOpensAndReplacesARollout(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel, "  rollout:", "    stages: [10%, 50%]")
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	u := newUpdater(t)
	clone := filepath.Join(t.TempDir(), "clone.git")

	st := sync(t, u, remote, clone)
	if st.State != updater.StateProposed || st.Action != updater.ActionRolloutOpen {
		t.Fatalf("status %+v", st)
	}
	wantDiff := `@@ -8,3 +8,12 @@ initrd:
   - url: https://example.test/old/flatcar_production_pxe_image.cpio.gz
     sha256: 0000000000000000000000000000000000000000000000000000000000000000
 update: omaha
+rollout:
+  version: 2.0.0
+  share: 10%
+  kernel:
+    url: /assets/` + sum(kernel) + `/flatcar_production_pxe.vmlinuz
+    sha256: ` + sum(kernel) + `
+  initrd:
+    - url: /assets/` + sum(initrd) + `/flatcar_production_pxe_image.cpio.gz
+      sha256: ` + sum(initrd)
	diff := remote.Git("--git-dir", remote.Bare, "diff", "main", branch)
	if _, hunk, _ := strings.Cut(diff, "+++ b/images/flatcar-stable.yaml\n"); hunk != wantDiff {
		t.Errorf("diff:\n%s\nwant:\n%s", diff, wantDiff)
	}
	if msg := lastMessage(remote); !strings.HasPrefix(msg, "images/flatcar-stable.yaml: flatcar stable rollout of 2.0.0 opened at 10% (pinned 1.0.0)\n") {
		t.Errorf("commit message:\n%s", msg)
	}

	first := remote.Git("--git-dir", remote.Bare, "rev-parse", branch)
	if st := sync(t, u, remote, clone); st.State != updater.StateUnchanged || st.Commit != first {
		t.Fatalf("second pass: %+v", st)
	}
	// Merged: the rollout is open on main; nothing new, nothing proposed.
	merge(remote)
	if st := sync(t, u, remote, clone); st.State != updater.StateUpToDate {
		t.Fatalf("pass after the merge: %+v", st)
	}

	k3, i3 := []byte("kernel 3.0.0"), []byte("initrd 3.0.0")
	publish(rel, "3.0.0", k3, i3)
	rel.SetLatest("3.0.0")
	if st := sync(t, u, remote, clone); st.State != updater.StateProposed || st.Action != updater.ActionRolloutReplace {
		t.Fatalf("newer release: %+v", st)
	}
	if msg := lastMessage(remote); !strings.HasPrefix(msg, "images/flatcar-stable.yaml: flatcar stable rollout 2.0.0 → 3.0.0, a newer release, back to 10% (pinned 1.0.0)\n") {
		t.Errorf("commit message:\n%s", msg)
	}
	body := branchFile(remote)
	if !strings.Contains(body, "version: 1.0.0   # bumped") || !strings.Contains(body, "  version: 3.0.0\n") || !strings.Contains(body, sum(k3)) || strings.Contains(body, sum(kernel)) {
		t.Errorf("branch file:\n%s", body)
	}
}

// With omaha.rollout.soak, inside serve: once hosts have reported the
// rollout's version for the soak time, and the stage has been in the
// served tree that long, the next stage is proposed, then the finished
// rollout; a stage merged later soaks in full again.
func TestSyncMovesASoakedRolloutOn(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel, "  rollout:", "    stages: [10%, 50%]", "    soak: 1h")
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now := t0
	var hosts int
	var since time.Time
	u := newUpdater(t)
	u.Now = func() time.Time { return now }
	u.Hosts = func(arch, version string) (int, time.Time) {
		if arch != "amd64" || version != "2.0.0" {
			return 0, time.Time{}
		}
		return hosts, since
	}
	clone := filepath.Join(t.TempDir(), "clone.git")
	pass := func(at time.Duration) updater.ImageStatus {
		t.Helper()
		now = t0.Add(at)
		return sync(t, u, remote, clone)
	}
	if st := pass(0); st.Action != updater.ActionRolloutOpen {
		t.Fatalf("first pass: %+v", st)
	}
	merge(remote)
	if st := pass(time.Minute); st.State != updater.StateUpToDate {
		t.Fatalf("no canary yet: %+v", st)
	}
	hosts, since = 2, t0.Add(5*time.Minute)
	if st := pass(50 * time.Minute); st.State != updater.StateUpToDate {
		t.Fatalf("45 minutes of canaries: %+v", st)
	}
	if st := pass(66 * time.Minute); st.State != updater.StateProposed || st.Action != updater.ActionRolloutStage {
		t.Fatalf("soaked: %+v", st)
	}
	msg := lastMessage(remote)
	if !strings.HasPrefix(msg, "images/flatcar-stable.yaml: flatcar stable rollout of 2.0.0: 10% → 50% (pinned 1.0.0)\n") ||
		!strings.Contains(msg, "2 hosts report 2.0.0, reported without a pause since 2026-12-01T09:05:00Z; this stage soaked for 1h1m0s") {
		t.Errorf("commit message:\n%s", msg)
	}
	if body := branchFile(remote); !strings.Contains(body, "  share: 50%\n") || !strings.Contains(body, "version: 1.0.0   # bumped") {
		t.Errorf("branch file:\n%s", body)
	}
	merge(remote)
	if st := pass(70 * time.Minute); st.State != updater.StateUpToDate {
		t.Fatalf("the 50%% stage just merged: %+v", st)
	}
	if st := pass(129 * time.Minute); st.State != updater.StateUpToDate {
		t.Fatalf("the 50%% stage after 59 minutes: %+v", st)
	}
	if st := pass(131 * time.Minute); st.State != updater.StateProposed || st.Action != updater.ActionRolloutFinish {
		t.Fatalf("the last stage soaked: %+v", st)
	}
	if msg := lastMessage(remote); !strings.HasPrefix(msg, "images/flatcar-stable.yaml: flatcar stable rollout of 2.0.0 finished: 1.0.0 → 2.0.0\n") {
		t.Errorf("commit message:\n%s", msg)
	}
	body := branchFile(remote)
	if strings.Contains(body, "rollout") || !strings.Contains(body, "version: 2.0.0   # bumped") || !strings.Contains(body, "sha256: "+sum(kernel)) || !strings.Contains(body, "sha256: "+sum(initrd)) {
		t.Errorf("finished rollout:\n%s", body)
	}
	// Moving stages downloads nothing again.
	if n := rel.Hits(omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"); n != 1 {
		t.Errorf("kernel fetched %d times, want 1", n)
	}
}
