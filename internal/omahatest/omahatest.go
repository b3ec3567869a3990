// Package omahatest fakes what the updater talks to, on loopback: an
// Omaha update service and a release server whose files are signed by a
// key made for the test (with a subkey that has since expired, and a key
// nobody pinned).
package omahatest

import (
	"bytes"
	"crypto"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/omaha"
)

// Release is a fake release server and Omaha service in one httptest
// server: /v1/update/ answers like Flatcar's service, and
// /<channel>/<board>/<version>/<file> serves published files and .sig.
type Release struct {
	t   testing.TB
	URL string

	// Key signs releases; Expired is its signing subkey that expired a
	// year ago (valid when it signed old releases); Stranger is a key
	// nobody pinned.
	Key, Stranger *pgp.Entity
	Expired       *packet.PrivateKey
	current       *packet.PrivateKey

	mu    sync.Mutex
	files map[string][]byte // URL path -> body
	// Latest is what the Omaha service offers to machines below it; ""
	// answers noupdate. A channel given its own (SetChannelLatest) offers
	// that instead.
	Latest    string
	byChannel map[string]string
	// Status overrides the answer for a path (404, 500, ...).
	Status map[string]int
	// Truncate serves a path's body cut in half under a full Content-Length.
	Truncate map[string]bool
	// Hold makes a path send its first half and then wait until the
	// channel closes.
	Hold     map[string]chan struct{}
	Requests []*omaha.Request
	floors   []string // ascending
	hits     map[string]int
	redirect map[string]string
}

var epoch = time.Now().Add(-3 * 365 * 24 * time.Hour)

// New starts the server until the test ends.
func New(t testing.TB) *Release {
	t.Helper()
	at := func(ts time.Time) func() time.Time { return func() time.Time { return ts } }
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at(epoch)}
	key, err := pgp.NewEntity("Test Release Signing", "", "release@example.test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A subkey made at epoch that expired after a year.
	if err := key.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at(epoch), KeyLifetimeSecs: 365 * 24 * 3600}); err != nil {
		t.Fatal(err)
	}
	// The current signing subkey, made two years after epoch.
	if err := key.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at(epoch.Add(2 * 365 * 24 * time.Hour))}); err != nil {
		t.Fatal(err)
	}
	stranger, err := pgp.NewEntity("Someone Else", "", "other@example.test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Subkeys[0] is the encryption subkey NewEntity makes.
	r := &Release{t: t, Key: key, Stranger: stranger, Expired: key.Subkeys[1].PrivateKey, current: key.Subkeys[2].PrivateKey,
		files: map[string][]byte{}, Status: map[string]int{}, Truncate: map[string]bool{}, Hold: map[string]chan struct{}{}, hits: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Fingerprint is the primary fingerprint of Key.
func (r *Release) Fingerprint() string {
	return strings.ToUpper(fmt.Sprintf("%x", r.Key.PrimaryKey.Fingerprint))
}

// PublicKey is Key's armored public keyring.
func (r *Release) PublicKey() string { return armored(r.t, r.Key) }

// StrangerKey is the unpinned key's armored public keyring.
func (r *Release) StrangerKey() string { return armored(r.t, r.Stranger) }

func armored(t testing.TB, e *pgp.Entity) string {
	var b bytes.Buffer
	w, err := armor.Encode(&b, pgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.String()
}

// ServerURL is the Omaha endpoint.
func (r *Release) ServerURL() string { return r.URL + "/v1/update/" }

// Mirror is the mirror template for pxeops.yaml.
func (r *Release) Mirror() string { return r.URL + "/{{ .Channel }}/{{ .Board }}/{{ .Version }}/" }

// Dir is the URL path of a release's directory.
func Dir(channel, version string) string { return "/" + channel + "/amd64-usr/" + version + "/" }

// Publish puts files into a release of channel, each signed now with the
// current subkey, and points current/version.txt at it.
func (r *Release) Publish(channel, version string, files map[string][]byte) {
	for name, body := range files {
		r.Put(Dir(channel, version)+name, body, r.Sign(body, r.current, time.Now()))
	}
	r.mu.Lock()
	r.files[Dir(channel, "current")+"version.txt"] = []byte("FLATCAR_BUILD=1\nFLATCAR_VERSION=" + version + "\n")
	r.mu.Unlock()
}

// Put serves body at path and sig at path.sig (nil: no signature).
func (r *Release) Put(path string, body, sig []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = body
	delete(r.files, path+".sig")
	if sig != nil {
		r.files[path+".sig"] = sig
	}
}

// Sign makes a binary detached signature over data with key, dated at.
func (r *Release) Sign(data []byte, key *packet.PrivateKey, at time.Time) []byte {
	sig := &packet.Signature{
		Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: key.PubKeyAlgo, Hash: crypto.SHA256,
		CreationTime: at, IssuerKeyId: &key.KeyId, IssuerFingerprint: key.Fingerprint,
	}
	h := sig.Hash.New()
	h.Write(data)
	if err := sig.Sign(h, key, &packet.Config{}); err != nil {
		r.t.Fatal(err)
	}
	var b bytes.Buffer
	if err := sig.Serialize(&b); err != nil {
		r.t.Fatal(err)
	}
	return b.Bytes()
}

// SignNow signs data with the current signing subkey.
func (r *Release) SignNow(data []byte) []byte { return r.Sign(data, r.current, time.Now()) }

// Hits counts the GETs of path.
func (r *Release) Hits(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// HoldAt makes path stall halfway until release is called.
func (r *Release) HoldAt(path string) (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.Hold[path] = ch
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.Hold, path)
		r.mu.Unlock()
		close(ch)
	}
}

// Move serves path's body at to and redirects path there, the way
// Flatcar's flatcar_production_pxe.vmlinuz redirects to the image kernel.
func (r *Release) Move(path, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.redirect == nil {
		r.redirect = map[string]string{}
	}
	r.files[to] = r.files[path]
	r.redirect[path] = to
}

// SetStatus makes path answer with code; 0 serves it again.
func (r *Release) SetStatus(path string, code int) {
	r.mu.Lock()
	r.Status[path] = code
	r.mu.Unlock()
}

// Asked lists the versions update checks came from, in order.
func (r *Release) Asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, req := range r.Requests {
		out = append(out, req.Apps[0].Version)
	}
	return out
}

// SetFloors makes the service announce floor releases (ascending).
func (r *Release) SetFloors(versions ...string) {
	r.mu.Lock()
	r.floors = versions
	r.mu.Unlock()
}

// SetLatest changes what the Omaha service offers.
func (r *Release) SetLatest(v string) {
	r.mu.Lock()
	r.Latest = v
	r.mu.Unlock()
}

// SetChannelLatest makes channel offer v, whatever Latest says; the
// other channels keep Latest. An update check from 0.0.0 gets the
// channel's current release, as from Nebraska.
func (r *Release) SetChannelLatest(channel, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byChannel == nil {
		r.byChannel = map[string]string{}
	}
	r.byChannel[channel] = v
}

func (r *Release) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/v1/update/" {
		r.omaha(w, req)
		return
	}
	r.mu.Lock()
	r.hits[req.URL.Path]++
	body, ok := r.files[req.URL.Path]
	status, truncate, hold := r.Status[req.URL.Path], r.Truncate[req.URL.Path], r.Hold[req.URL.Path]
	target, moved := r.redirect[req.URL.Path]
	r.mu.Unlock()
	switch {
	case moved:
		http.Redirect(w, req, target, http.StatusFound)
	case status != 0:
		http.Error(w, http.StatusText(status), status)
	case !ok:
		http.NotFound(w, req)
	case truncate || hold != nil:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		if hold != nil {
			select {
			case <-hold:
			case <-req.Context().Done():
			}
		}
		// Returning short of Content-Length cuts the connection.
	default:
		w.Write(body)
	}
}

func (r *Release) omaha(w http.ResponseWriter, req *http.Request) {
	parsed, err := omaha.ParseRequest(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.Requests = append(r.Requests, parsed)
	latest, status := r.Latest, r.Status["/v1/update/"]
	r.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	resp := omaha.Response{Protocol: "3.0", Server: "omahatest"}
	for _, app := range parsed.Apps {
		latest := latest
		r.mu.Lock()
		if v, ok := r.byChannel[app.Track]; ok {
			latest = v
		}
		r.mu.Unlock()
		uc := &omaha.UpdateCheck{Status: "noupdate"}
		if latest != "" && omaha.CompareVersions(latest, app.Version) > 0 {
			uc = &omaha.UpdateCheck{Status: "ok", URLs: []omaha.URL{{Codebase: r.URL + "/update/"}}}
			// Like Nebraska with multi_manifest_ok and one floor per
			// answer: the floors above the asker's version, and the
			// target only once a single floor remains.
			var ahead []string
			for _, f := range r.floors {
				if omaha.CompareVersions(f, app.Version) > 0 {
					ahead = append(ahead, f)
				}
			}
			if len(ahead) > 0 {
				uc.Manifests = append(uc.Manifests, omaha.Manifest{Version: ahead[0], IsFloor: "true", FloorReason: "test floor"})
			}
			if len(ahead) <= 1 {
				uc.Manifests = append(uc.Manifests, omaha.Manifest{Version: latest, IsTarget: "true",
					Packages: []omaha.Package{{Name: "flatcar_production_update.gz", Hash: "AAAA", Size: "1"}}})
			}
		}
		resp.Apps = append(resp.Apps, omaha.ResponseApp{AppID: app.AppID, Status: "ok", UpdateCheck: uc})
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Write(omaha.Marshal(resp))
}

// ImageYAML is images/flatcar-stable.yaml of CommitFleet: version 1.0.0,
// tracked by the updater, with comments and mixed quoting to preserve.
const ImageYAML = `# Flatcar for the workers; the updater keeps this current.
os: flatcar
channel: stable
version: 1.0.0   # bumped by pxeops omaha sync
kernel:
  url: "https://example.test/old/flatcar_production_pxe.vmlinuz"
initrd:
  - url: https://example.test/old/flatcar_production_pxe_image.cpio.gz
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
update: omaha
`

// OldKernel and OldInitrd are release 1.0.0's files, the one CommitFleet
// pins, published on the stable channel (where the updater looks for the
// pinned release when the service offers nothing newer).
var OldKernel, OldInitrd = []byte("kernel 1.0.0"), []byte("initrd 1.0.0")

// CommitFleet commits to remote a config tree with one image tracked
// against this release server, its key pinned, and publishes the pinned
// release 1.0.0 on stable; extra lines go into the omaha: mapping of
// pxeops.yaml (e.g. "  fallback: true").
func (r *Release) CommitFleet(remote *gittest.Remote, extra ...string) string {
	r.PublishImage("1.0.0", OldKernel, OldInitrd)
	return remote.Commit("fleet", map[string]string{
		"images/flatcar-stable.yaml": ImageYAML,
		"profiles/worker.yaml":       "image: flatcar-stable\nargs: [flatcar.first_boot=yes]\n",
		"groups/default.yaml":        "profile: worker\n",
		"keys/release.asc":           r.PublicKey(),
		"pxeops.yaml": "omaha:\n  server: " + r.ServerURL() + "\n  mirror: \"" + r.Mirror() + "\"\n" +
			"  keyring: keys/release.asc\n  fingerprints: [" + r.Fingerprint() + "]\n" + strings.Join(append(extra, ""), "\n"),
	})
}

// PublishImage publishes a stable release's PXE kernel and initrd.
func (r *Release) PublishImage(version string, kernel, initrd []byte) {
	r.PublishOn("stable", version, kernel, initrd)
}

// PublishOn publishes a release's PXE kernel and initrd on channel.
func (r *Release) PublishOn(channel, version string, kernel, initrd []byte) {
	r.Publish(channel, version, map[string][]byte{"flatcar_production_pxe.vmlinuz": kernel, "flatcar_production_pxe_image.cpio.gz": initrd})
}
