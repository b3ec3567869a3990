package updater_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/schema"
)

// keyServer is the vendor's key URL, faked over TLS on loopback.
type keyServer struct {
	URL    string
	Client *http.Client // trusts the server; fails the test for any other host

	mu     gosync.Mutex
	body   string
	status int
	hits   int
}

// newKeyServer serves rel's public key until the test ends. Its client
// refuses every host but the key server and rel: the real vendor URL is
// never asked.
func newKeyServer(t *testing.T, rel *omahatest.Release) *keyServer {
	ks := &keyServer{body: rel.PublicKey()}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		ks.hits++
		if ks.status != 0 {
			http.Error(w, http.StatusText(ks.status), ks.status)
			return
		}
		w.Write([]byte(ks.body))
	}))
	t.Cleanup(srv.Close)
	ks.URL = srv.URL + "/security/Image_Signing_Key.asc"
	allowed := map[string]bool{}
	for _, u := range []string{srv.URL, rel.URL} {
		p, _ := url.Parse(u)
		allowed[p.Host] = true
	}
	inner := srv.Client().Transport
	ks.Client = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if !allowed[r.URL.Host] {
			t.Errorf("a request to %s, not a test server", r.URL)
			return nil, fmt.Errorf("test: %s is not a test server", r.URL.Host)
		}
		return inner.RoundTrip(r)
	})}
	return ks
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (ks *keyServer) serve(body string, status int) {
	ks.mu.Lock()
	ks.body, ks.status = body, status
	ks.mu.Unlock()
}

func (ks *keyServer) Hits() int {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.hits
}

// fetchingFleet is fleet without omaha.keyring: the key comes from ks.
func fetchingFleet(t *testing.T, rel *omahatest.Release, ks *keyServer) *gittest.Remote {
	remote := fleet(t, rel)
	remote.Commit("fetch the key", map[string]string{"pxeops.yaml": "omaha:\n  server: " + rel.ServerURL() + "\n  mirror: \"" + rel.Mirror() + "\"\n" +
		"  keyringURL: " + ks.URL + "\n  fingerprints: [" + rel.Fingerprint() + "]\n"})
	return remote
}

// fetchingUpdater verifies with keys fetched from ks, kept in store.
func fetchingUpdater(t *testing.T, ks *keyServer, store string) *updater.Updater {
	u := newUpdater(t)
	u.Store.Dir, u.Store.HTTP = store, ks.Client
	u.Keyrings = &updater.Keyrings{Dir: filepath.Join(store, updater.KeyringDir), HTTP: ks.Client}
	return u
}

func cached(t *testing.T, store string) (string, os.FileMode) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(store, updater.KeyringDir, "*"))
	if len(files) != 1 {
		t.Fatalf("keyring dir holds %v, want one file", files)
	}
	info, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(files[0])
	return string(data), info.Mode().Perm()
}

func TestFetchedKeyringVerifiesAndIsKept(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	remote := fetchingFleet(t, rel, ks)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	store := t.TempDir()
	u := fetchingUpdater(t, ks, store)
	st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed || st.Signer != rel.Fingerprint() {
		t.Fatalf("status %+v", st)
	}
	if body, mode := cached(t, store); body != rel.PublicKey() || mode != 0o644 {
		t.Errorf("kept keyring mode %v, same as served: %v", mode, body == rel.PublicKey())
	}
	ks0 := u.KeyringStatus()["flatcar"]
	if ks0.Mode != updater.KeyringFetched || ks0.Source != ks.URL || ks0.Fetched.IsZero() || ks0.Error != "" || ks0.Pinned[0] != rel.Fingerprint() {
		t.Errorf("keyring status %+v", ks0)
	}
	// The next pass, within a day, uses the kept copy.
	sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if n := ks.Hits(); n != 1 {
		t.Errorf("key fetched %d times, want 1", n)
	}
}

func TestFetchedKeyringWithWrongPrimaryIsRefused(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	remote := fetchingFleet(t, rel, ks)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")

	// No kept copy: fail closed, keep nothing.
	ks.serve(rel.StrangerKey(), 0)
	store := t.TempDir()
	u := fetchingUpdater(t, ks, store)
	st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateFailed || st.Stage != "verify" || st.Retry || !strings.Contains(st.Error, "refused: the keyring holds none of the pinned keys") {
		t.Fatalf("status %+v", st)
	}
	if files := servable(t, store); len(files) > 0 {
		t.Errorf("kept %v", files)
	}
	if files, _ := filepath.Glob(filepath.Join(store, updater.KeyringDir, "*")); len(files) > 0 {
		t.Errorf("a refused key was kept: %v", files)
	}

	// A kept copy is not overwritten by a refused one, and still verifies.
	ks.serve(rel.PublicKey(), 0)
	store = t.TempDir()
	u = fetchingUpdater(t, ks, store)
	if st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git")); st.State != updater.StateProposed {
		t.Fatalf("status %+v", st)
	}
	ks.serve(rel.StrangerKey(), 0)
	u.Keyrings.Refresh, u.Keyrings.Pause = time.Nanosecond, time.Nanosecond // every pass fetches
	k3, i3 := []byte("kernel 3.0.0"), []byte("initrd 3.0.0")
	publish(rel, "3.0.0", k3, i3)
	rel.SetLatest("3.0.0")
	if st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git")); st.State != updater.StateProposed || st.Latest != "3.0.0" {
		t.Fatalf("status %+v", st)
	}
	if body, _ := cached(t, store); body != rel.PublicKey() {
		t.Error("the kept keyring was overwritten by the refused one")
	}
	if err := u.KeyringStatus()["flatcar"].Error; !strings.Contains(err, "refused") {
		t.Errorf("keyring status error %q", err)
	}
}

// The vendor adds a signing subkey under the pinned primary: the first
// release it signs makes pxeops fetch the key again, once.
func TestNewSubkeyIsFetched(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	remote := fetchingFleet(t, rel, ks)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	store := t.TempDir()
	u := fetchingUpdater(t, ks, store)
	u.Keyrings.Pause = 500 * time.Millisecond
	if st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git")); st.State != updater.StateProposed {
		t.Fatalf("status %+v", st)
	}
	if err := rel.Key.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}); err != nil {
		t.Fatal(err)
	}
	ks.serve(rel.PublicKey(), 0)
	sub := rel.Key.Subkeys[len(rel.Key.Subkeys)-1].PrivateKey
	k3, i3 := []byte("kernel 3.0.0"), []byte("initrd 3.0.0")
	dir := omahatest.Dir("stable", "3.0.0")
	rel.Put(dir+"flatcar_production_pxe.vmlinuz", k3, rel.Sign(k3, sub, time.Now()))
	rel.Put(dir+"flatcar_production_pxe_image.cpio.gz", i3, rel.Sign(i3, sub, time.Now()))
	rel.SetLatest("3.0.0")
	time.Sleep(600 * time.Millisecond) // past the pause since the first fetch
	st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed || st.Latest != "3.0.0" || st.Signer != rel.Fingerprint() {
		t.Fatalf("status %+v", st)
	}
	// Once for the kernel; the initrd, within the pause, found it already.
	if n := ks.Hits(); n != 2 {
		t.Errorf("key fetched %d times, want 2", n)
	}
	if body, _ := cached(t, store); body != rel.PublicKey() {
		t.Error("the kept keyring lacks the new subkey")
	}
}

// Signatures by a key the keyring lacks fetch it again at most once per
// pause, however many there are: a bad release cannot make pxeops hammer
// the vendor.
func TestUnknownIssuerFetchesAtMostOncePerPause(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	remote := fetchingFleet(t, rel, ks)
	rel.PublishImage("2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	dir := omahatest.Dir("stable", "2.0.0")
	rel.Put(dir+"flatcar_production_pxe.vmlinuz", kernel, rel.Sign(kernel, rel.Stranger.PrivateKey, time.Now()))
	u := fetchingUpdater(t, ks, t.TempDir())
	for range 3 {
		st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
		if st.State != updater.StateFailed || st.Stage != "verify" || !strings.Contains(st.Error, "not pinned") || !strings.Contains(st.Error, "not fetched again yet") {
			t.Fatalf("status %+v", st)
		}
	}
	if n := ks.Hits(); n != 1 {
		t.Errorf("key fetched %d times in 3 passes, want 1", n)
	}
}

func TestFailedRefreshKeepsTheKeptCopy(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	remote := fetchingFleet(t, rel, ks)
	publish(rel, "2.0.0", kernel, initrd)
	rel.SetLatest("2.0.0")
	store := t.TempDir()
	if st := sync(t, fetchingUpdater(t, ks, store), remote, filepath.Join(t.TempDir(), "clone.git")); st.State != updater.StateProposed {
		t.Fatalf("status %+v", st)
	}
	ks.serve("", 500)
	k3, i3 := []byte("kernel 3.0.0"), []byte("initrd 3.0.0")
	publish(rel, "3.0.0", k3, i3)
	rel.SetLatest("3.0.0")
	// A restarted pxeops whose copy is due for a refresh, the vendor down.
	u := fetchingUpdater(t, ks, store)
	u.Keyrings.Refresh = time.Nanosecond
	st := sync(t, u, remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateProposed || st.Latest != "3.0.0" {
		t.Fatalf("status %+v", st)
	}
	got := u.KeyringStatus()["flatcar"]
	if !strings.Contains(got.Error, "500 Internal Server Error") || got.LastAttempt.IsZero() || got.Fetched.After(got.LastAttempt) {
		t.Errorf("keyring status %+v", got)
	}
	if body, _ := cached(t, store); body != rel.PublicKey() {
		t.Error("the kept keyring changed")
	}

	// Without a kept copy, the pass fails closed and says to try again.
	st = sync(t, fetchingUpdater(t, ks, t.TempDir()), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateFailed || st.Stage != "verify" || !st.Retry || !strings.Contains(st.Error, "500") {
		t.Fatalf("status %+v", st)
	}
}

// Whatever else the vendor's file holds, only the pinned primary's keys
// verify: a release signed by another key in it is refused and not kept.
func TestUnpinnedKeyInFetchedFileNeverVerifies(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	both := rel.PublicKey() + rel.StrangerKey()
	ks.serve(both, 0)
	remote := fetchingFleet(t, rel, ks)
	publish(rel, "2.0.0", kernel, initrd)
	dir := omahatest.Dir("stable", "2.0.0")
	rel.Put(dir+"flatcar_production_pxe_image.cpio.gz", initrd, rel.Sign(initrd, rel.Stranger.PrivateKey, time.Now()))
	rel.SetLatest("2.0.0")
	store := t.TempDir()
	st := sync(t, fetchingUpdater(t, ks, store), remote, filepath.Join(t.TempDir(), "clone.git"))
	if st.State != updater.StateFailed || st.Stage != "verify" || !strings.Contains(st.Error, "not pinned") || !strings.Contains(st.Error, "nothing kept") {
		t.Fatalf("status %+v", st)
	}
	for _, f := range servable(t, store) {
		if strings.HasSuffix(f, ".cpio.gz") || strings.HasSuffix(f, ".cpio.gz.sig") {
			t.Errorf("kept %s", f)
		}
	}
	if refs := remote.Git("--git-dir", remote.Bare, "for-each-ref", "--format=%(refname)"); refs != "refs/heads/main" {
		t.Errorf("refs on the remote: %s", refs)
	}
}

func TestKeyringFetchIsBounded(t *testing.T) {
	rel := omahatest.New(t)
	ks := newKeyServer(t, rel)
	o := schema.OmahaSettings{Fingerprints: []string{rel.Fingerprint()}}
	for _, c := range []struct {
		name, url, body, err string
	}{
		{"plain http", strings.Replace(ks.URL, "https://", "http://", 1), rel.PublicKey(), "want https://"},
		{"over 1 MiB", ks.URL, rel.PublicKey() + strings.Repeat("\n", 1<<20), "larger than 1048576 bytes"},
		{"not a key", ks.URL, "<html>moved</html>", "refused: read keyring"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ks.serve(c.body, 0)
			k := &updater.Keyrings{Dir: t.TempDir(), HTTP: ks.Client}
			o.KeyringURL = c.url
			if _, err := k.For(context.Background(), fstest.MapFS{}, o, "flatcar"); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("err %v, want %q", err, c.err)
			}
		})
	}
}

func TestKeyringNotices(t *testing.T) {
	image := func(osName string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("os: " + osName + "\nchannel: stable\nversion: 1.0.0\nkernel:\n  url: https://example.test/k\ninitrd:\n  - url: https://example.test/i\nupdate: omaha\n")}
	}
	base := fstest.MapFS{
		"images/flatcar.yaml": image("flatcar"), "images/coreos.yaml": image("coreos"),
		"profiles/p.yaml": {Data: []byte("image: flatcar\n")}, "groups/g.yaml": {Data: []byte("profile: p\n")},
		"keys/flatcar.asc": {Data: []byte("key")},
	}
	for _, c := range []struct {
		settings string
		want     []string
	}{
		{"", []string{
			"pxeops.yaml:1:1: notice: omaha: coreos images are verified with the coreos key built into pxeops, pinned to " + updater.CoreOSFingerprint,
			"pxeops.yaml:1:1: notice: omaha: flatcar images are verified with the keyring fetched from https://www.flatcar.org/security/image-signing-key/Flatcar_Image_Signing_Key.asc (kept in the asset store's .keyring/, fetched again daily), pinned to " + updater.FlatcarFingerprint,
		}},
		{"omaha:\n  keyring: keys/flatcar.asc\n", []string{
			"pxeops.yaml:2:12: notice: omaha: coreos images are verified with the keyring from repository file keys/flatcar.asc, pinned to " + updater.CoreOSFingerprint,
			"pxeops.yaml:2:12: notice: omaha: flatcar images are verified with the keyring from repository file keys/flatcar.asc, pinned to " + updater.FlatcarFingerprint,
		}},
		{"omaha:\n  keyringURL: https://mirror.example/k.asc\n", []string{
			"pxeops.yaml:2:15: notice: omaha: coreos images are verified with the keyring fetched from https://mirror.example/k.asc (kept in the asset store's .keyring/, fetched again daily), pinned to " + updater.CoreOSFingerprint,
			"pxeops.yaml:2:15: notice: omaha: flatcar images are verified with the keyring fetched from https://mirror.example/k.asc (kept in the asset store's .keyring/, fetched again daily), pinned to " + updater.FlatcarFingerprint,
		}},
	} {
		fsys := fstest.MapFS{}
		if c.settings != "" {
			fsys["pxeops.yaml"] = &fstest.MapFile{Data: []byte(c.settings)}
		}
		for k, v := range base {
			fsys[k] = v
		}
		tree, diags := schema.Load(context.Background(), fsys, nil)
		if diags.Errors() > 0 {
			t.Fatal(diags)
		}
		var got []string
		for _, d := range updater.KeyringNotices(tree) {
			got = append(got, d.String())
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("settings %q:\n%s\nwant:\n%s", c.settings, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// FuzzKeyring feeds keyrings and signatures as a vendor's server or a
// mirror could send them: nothing panics, and only a pinned primary's
// keys ever verify.
func FuzzKeyring(f *testing.F) {
	rel := omahatest.New(f)
	data := []byte("a release")
	var armored bytes.Buffer
	w, _ := armor.Encode(&armored, "PGP SIGNATURE", nil)
	w.Write(rel.SignNow(data))
	w.Close()
	f.Add([]byte(rel.PublicKey()), rel.SignNow(data))
	f.Add([]byte(rel.PublicKey()+rel.StrangerKey()), rel.Sign(data, rel.Stranger.PrivateKey, time.Now()))
	f.Add([]byte(rel.PublicKey()), armored.Bytes())
	f.Add([]byte(rel.StrangerKey()), rel.Sign(data, rel.Expired, time.Now()))
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"), []byte{0x88, 0x00})
	f.Fuzz(func(t *testing.T, keyring, sig []byte) {
		k, err := updater.NewKeyring(keyring, []string{rel.Fingerprint()})
		if err != nil {
			return
		}
		signer, err := k.Verify(context.Background(), bytes.NewReader(data), sig)
		if err == nil && signer.Primary != rel.Fingerprint() {
			t.Fatalf("verified by %s, not the pinned key", signer.Primary)
		}
	})
}
