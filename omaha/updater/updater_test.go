package updater_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/source/propose"
)

// fleet commits a config repository tracking one image against rel.
func fleet(t *testing.T, rel *omahatest.Release, settings ...string) *gittest.Remote {
	t.Helper()
	remote := gittest.New(t)
	rel.CommitFleet(remote, settings...)
	return remote
}

var kernel, initrd = []byte("kernel 2.0.0 " + strings.Repeat("k", 4096)), []byte("initrd 2.0.0 " + strings.Repeat("i", 8192))

func publish(rel *omahatest.Release, version string, k, i []byte) { rel.PublishImage(version, k, i) }

func newUpdater(t *testing.T) *updater.Updater {
	return &updater.Updater{
		Client: &omaha.Client{},
		Store:  &updater.Store{Dir: t.TempDir(), Backoff: time.Millisecond, Attempts: 2, Stall: 200 * time.Millisecond},
		Author: object.Signature{Name: "pxeops", Email: "pxeops@example.test"},
		Push:   true,
	}
}

func sync(t *testing.T, u *updater.Updater, remote *gittest.Remote, cloneDir string) updater.ImageStatus {
	t.Helper()
	repo, err := propose.Open(context.Background(), propose.Options{Location: remote.FileURL(), Ref: "main", CloneDir: cloneDir})
	if err != nil {
		t.Fatal(err)
	}
	res, err := u.Sync(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return res["flatcar-stable"]
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

const branch = "pxeops/update-flatcar-stable"

func TestSyncProposesVerifiedUpdate(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	u := newUpdater(t)
	clone := filepath.Join(t.TempDir(), "clone.git")

	st := sync(t, u, remote, clone)
	if st.State != updater.StateProposed || !st.Pushed || st.Latest != "2.0.0" || st.Signer != rel.Fingerprint() {
		t.Fatalf("status %+v", st)
	}
	for _, f := range []struct {
		name string
		body []byte
	}{{"flatcar_production_pxe.vmlinuz", kernel}, {"flatcar_production_pxe_image.cpio.gz", initrd}} {
		got, err := os.ReadFile(filepath.Join(u.Store.Dir, sum(f.body), f.name))
		if err != nil || string(got) != string(f.body) {
			t.Fatalf("asset %s: %v", f.name, err)
		}
	}
	// The update asked as a stable machine on 1.0.0 would, with multi_manifest_ok.
	if asked := rel.Asked(); len(asked) != 1 || asked[0] != "1.0.0" {
		t.Errorf("asked as %v", asked)
	}
	req := rel.Requests[0]
	if app := req.Apps[0]; app.Version != "1.0.0" || app.Track != "stable" || app.MultiManifestOK != "true" || app.UpdateCheck == nil {
		t.Errorf("omaha request app %+v", app)
	}

	wantDiff := `@@ -1,10 +1,11 @@
 # Flatcar for the workers; the updater keeps this current.
 os: flatcar
 channel: stable
-version: 1.0.0   # bumped by pxeops omaha sync
+version: 2.0.0   # bumped by pxeops omaha sync
 kernel:
-  url: "https://example.test/old/flatcar_production_pxe.vmlinuz"
+  url: "/assets/` + sum(kernel) + `/flatcar_production_pxe.vmlinuz"
+  sha256: ` + sum(kernel) + `
 initrd:
-  - url: https://example.test/old/flatcar_production_pxe_image.cpio.gz
-    sha256: 0000000000000000000000000000000000000000000000000000000000000000
+  - url: /assets/` + sum(initrd) + `/flatcar_production_pxe_image.cpio.gz
+    sha256: ` + sum(initrd) + `
 update: omaha`
	diff := remote.Git("--git-dir", remote.Bare, "diff", "main", branch)
	if _, hunk, _ := strings.Cut(diff, "+++ b/images/flatcar-stable.yaml\n"); hunk != wantDiff {
		t.Errorf("diff:\n%s\nwant:\n%s", diff, wantDiff)
	}
	if files := remote.Git("--git-dir", remote.Bare, "diff", "--name-only", "main", branch); files != "images/flatcar-stable.yaml" {
		t.Errorf("changed files %q", files)
	}
	msg := remote.Git("--git-dir", remote.Bare, "log", "-1", "--format=%B", branch)
	for _, want := range []string{"images/flatcar-stable.yaml: flatcar stable 1.0.0 → 2.0.0", sum(kernel), sum(initrd), rel.Fingerprint(), "release: https://www.flatcar.org/releases#release-2.0.0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	// pxeops check accepts the proposed tree.
	proposed, err := propose.Open(context.Background(), propose.Options{Location: remote.FileURL(), Ref: branch, CloneDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := proposed.Tree()
	if err != nil {
		t.Fatal(err)
	}
	if snap, diags := render.Load(context.Background(), tree, render.Options{}); snap == nil || len(diags) > 0 {
		t.Fatalf("proposed tree: %v", diags)
	}
	if main := remote.Git("--git-dir", remote.Bare, "rev-parse", "main"); main != remote.Git("rev-parse", "HEAD") {
		t.Fatal("the served branch moved")
	}

	// Second pass: nothing new.
	first := remote.Git("--git-dir", remote.Bare, "rev-parse", branch)
	if st := sync(t, u, remote, clone); st.State != updater.StateUnchanged || st.Commit != first {
		t.Fatalf("second pass: %+v", st)
	}
	if again := remote.Git("--git-dir", remote.Bare, "rev-parse", branch); again != first {
		t.Fatal("second pass made a commit")
	}
	// The release waiting for review is not downloaded again.
	if n := rel.Hits(omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"); n != 1 {
		t.Errorf("kernel fetched %d times, want 1", n)
	}

	// A newer release supersedes the open proposal on the same branch.
	k3, i3 := []byte("kernel 3.0.0"), []byte("initrd 3.0.0")
	publish(rel, "3.0.0", k3, i3)
	rel.SetLatest("3.0.0")
	if st := sync(t, u, remote, clone); st.State != updater.StateProposed || st.Latest != "3.0.0" {
		t.Fatalf("third pass: %+v", st)
	}
	if n := remote.Git("--git-dir", remote.Bare, "rev-list", "--count", "main.."+branch); n != "1" {
		t.Errorf("branch is %s commits ahead of main, want 1", n)
	}
	if body := remote.Git("--git-dir", remote.Bare, "show", branch+":images/flatcar-stable.yaml"); !strings.Contains(body, "version: 3.0.0   # bumped") || !strings.Contains(body, sum(k3)) {
		t.Errorf("branch file:\n%s", body)
	}
}

// servable lists the files the asset store would serve: everything but
// dot paths.
func servable(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestSyncKeepsNothingFromBadReleases(t *testing.T) {
	kpath := omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"
	for _, c := range []struct {
		name       string
		break_     func(rel *omahatest.Release)
		state      string
		stage, err string
		retry      bool
	}{
		{"tampered", func(rel *omahatest.Release) {
			rel.Put(kpath, []byte("kernel 2.0.0 with a backdoor"), rel.SignNow(kernel))
		}, updater.StateFailed, "verify", "bad signature", false},
		{"missing signature", func(rel *omahatest.Release) { rel.Put(kpath, kernel, nil) }, updater.StateNotPublished, "download", "not published yet", true},
		{"unknown key", func(rel *omahatest.Release) {
			rel.Put(kpath, kernel, rel.Sign(kernel, rel.Stranger.PrivateKey, time.Now()))
		}, updater.StateFailed, "verify", "not pinned", false},
		{"subkey expired before signing", func(rel *omahatest.Release) {
			rel.Put(kpath, kernel, rel.Sign(kernel, rel.Expired, time.Now()))
		}, updater.StateFailed, "verify", "expired", false},
		{"truncated", func(rel *omahatest.Release) { rel.Truncate[kpath] = true }, updater.StateFailed, "download", "", true},
		{"stalled", func(rel *omahatest.Release) { t.Cleanup(rel.HoldAt(kpath)) }, updater.StateFailed, "download", "stalled: no data for 200ms", true},
		{"404", func(rel *omahatest.Release) { rel.Status[kpath] = 404 }, updater.StateNotPublished, "download", "not published yet", true},
		{"server error", func(rel *omahatest.Release) { rel.Status[kpath] = 503 }, updater.StateFailed, "download", "503", true},
		{"omaha down", func(rel *omahatest.Release) { rel.Status["/v1/update/"] = 500 }, updater.StateFailed, "check", "500", true},
		{"noupdate", func(rel *omahatest.Release) { rel.SetLatest("") }, updater.StateUpToDate, "", "", false},
		{"older", func(rel *omahatest.Release) { rel.SetLatest("0.9.0") }, updater.StateUpToDate, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rel := omahatest.New(t)
			remote := fleet(t, rel)
			publish(rel, "2.0.0", kernel, initrd)
			rel.SetLatest("2.0.0")
			c.break_(rel)
			u := newUpdater(t)
			st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
			if st.State != c.state || st.Stage != c.stage || st.Retry != c.retry || !strings.Contains(st.Error, c.err) {
				t.Errorf("status %+v; want state %s stage %q retry %v error containing %q", st, c.state, c.stage, c.retry, c.err)
			}
			if files := servable(t, u.Store.Dir); len(files) > 0 {
				t.Errorf("kept %v", files)
			}
			if refs := remote.Git("--git-dir", remote.Bare, "for-each-ref", "--format=%(refname)"); refs != "refs/heads/main" {
				t.Errorf("refs on the remote: %s", refs)
			}
		})
	}
}

func TestOldReleaseSignedByRotatedSubkeyVerifies(t *testing.T) {
	rel := omahatest.New(t)
	keys, err := updater.NewKeyring([]byte(rel.PublicKey()), []string{rel.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a release from two and a half years ago")
	// Signed while the first subkey was valid; it has expired since.
	sig := rel.Sign(data, rel.Expired, time.Now().Add(-(3*365-30)*24*time.Hour))
	signer, err := keys.Verify(context.Background(), strings.NewReader(string(data)), sig)
	if err != nil || signer.Primary != rel.Fingerprint() {
		t.Fatalf("signer %+v, err %v", signer, err)
	}
	if _, err := keys.Verify(context.Background(), strings.NewReader("other data"), sig); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := updater.NewKeyring([]byte(rel.StrangerKey()), []string{rel.Fingerprint()}); err == nil {
		t.Fatal("a keyring without the pinned key was accepted")
	}
}

// Each key shipped in omaha/keys must carry its OS's pinned fingerprint.
// Flatcar's is not there yet (it could not be fetched where this was
// built): until omaha/keys/flatcar.asc is added, the error says what to do.
func TestBuiltinKeys(t *testing.T) {
	for _, osName := range []string{"coreos", "flatcar"} {
		data, err := updater.BuiltinKeyring(osName)
		if osName == "flatcar" && err != nil {
			if !strings.Contains(err.Error(), "omaha.keyring") {
				t.Errorf("flatcar: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := updater.NewKeyring(data, updater.DefaultFingerprints(osName)); err != nil {
			t.Errorf("the shipped %s key does not have the pinned fingerprint: %v", osName, err)
		}
	}
}
func TestSyncSignedCommitUpstreamURLsAndVersionTxtFallback(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel, "  fallback: true", "  urls: upstream")
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetStatus("/v1/update/", 502) // the Omaha service is down; version.txt names 2.0.0
	u := newUpdater(t)
	signer, err := pgp.NewEntity("pxeops bot", "", "bot@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	u.SignKey = signer
	st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed || st.Latest != "2.0.0" {
		t.Fatalf("status %+v", st)
	}
	body := remote.Git("--git-dir", remote.Bare, "show", branch+":images/flatcar-stable.yaml")
	if want := "url: \"" + rel.URL + omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz\""; !strings.Contains(body, want) {
		t.Errorf("upstream URL missing:\n%s\nwant %s", body, want)
	}
	var pub strings.Builder
	w, _ := armor.Encode(&pub, pgp.PublicKeyType, nil)
	signer.Serialize(w)
	w.Close()
	repo, err := git.PlainOpen(remote.Bare)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(pub.String()); err != nil {
		t.Fatalf("commit signature: %v", err)
	}
}

func TestSyncNeverCommitsToTheServedBranch(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel, `  branch: "main"`)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	head := remote.Git("rev-parse", "HEAD")
	st := sync(t, newUpdater(t), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateFailed || st.Stage != "commit" || !strings.Contains(st.Error, "served ref") {
		t.Fatalf("status %+v", st)
	}
	if now := remote.Git("--git-dir", remote.Bare, "rev-parse", "main"); now != head {
		t.Fatal("main moved")
	}
}

func TestSyncRefusesAnInvalidTree(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	remote.Commit("break", map[string]string{"groups/broken.yaml": "profile: nope\nselector: {mac: 52:54:00:00:00:01}\n"})
	repo, err := propose.Open(context.Background(), propose.Options{Location: remote.Work, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newUpdater(t).Sync(context.Background(), repo)
	if err == nil || !strings.Contains(err.Error(), "groups/broken.yaml:1:10: error") {
		t.Fatalf("err %v", err)
	}
}

// Flatcar's PXE kernel redirects to the image kernel; signatures may be
// armored.
func TestSyncFollowsRedirectsAndReadsArmoredSignatures(t *testing.T) {
	rel := omahatest.New(t)
	remote := fleet(t, rel)
	publish(rel, "2.0.0", kernel, initrd)
	dir := omahatest.Dir("stable", "2.0.0")
	rel.Move(dir+"flatcar_production_pxe.vmlinuz", dir+"flatcar_production_image.vmlinuz")
	var armored strings.Builder
	w, err := armor.Encode(&armored, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(rel.SignNow(initrd))
	w.Close()
	rel.Put(dir+"flatcar_production_pxe_image.cpio.gz", initrd, []byte(armored.String()))
	rel.SetLatest("2.0.0")
	st := sync(t, newUpdater(t), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed {
		t.Fatalf("status %+v", st)
	}
	if n := rel.Hits(dir + "flatcar_production_image.vmlinuz"); n != 1 {
		t.Errorf("redirect target fetched %d times", n)
	}
}
