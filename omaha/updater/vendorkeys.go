package updater

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/schema"
)

// KeyringDir holds the vendor keyrings fetched from omaha.keyringURL,
// under the asset store's directory. A dot path: never served.
const KeyringDir = ".keyring"

// Defaults of Keyrings.
const (
	// DefaultKeyringRefresh is how old a fetched keyring may get before a
	// pass fetches it again.
	DefaultKeyringRefresh = 24 * time.Hour
	// DefaultKeyringPause is the least time between two fetches of one
	// URL, however many signatures name a subkey the keyring lacks or
	// however often a refresh fails: a bad signature cannot make pxeops
	// hammer the vendor.
	DefaultKeyringPause = 15 * time.Minute
	// keyringTimeout bounds one fetch, redirects and body included.
	keyringTimeout = 30 * time.Second
)

// Keyring modes, as /status and pxeops check name them.
const (
	KeyringFetched    = "fetched"    // omaha.keyringURL, pinned, cached, refreshed
	KeyringRepository = "repository" // omaha.keyring, a file of the tree
	KeyringBuiltin    = "builtin"    // shipped in pxeops (CoreOS)
)

// Keyrings gives each pass the keyring an OS's images are verified with:
// the repository's file (omaha.keyring), else the vendor key fetched from
// omaha.keyringURL, else the one built into pxeops. A fetched keyring is
// used only when it holds a pinned primary key; it is kept in Dir, so a
// restart or an unreachable vendor does not stop verification, and
// fetched again when older than Refresh, when a signature's issuer is a
// subkey it lacks, and after a failed fetch, never more often than Pause.
type Keyrings struct {
	Dir     string       // where fetched keyrings are kept
	HTTP    *http.Client // nil: net/http's default client
	Log     *slog.Logger
	Refresh time.Duration // default DefaultKeyringRefresh
	Pause   time.Duration // default DefaultKeyringPause

	mu      sync.Mutex
	fetched map[string]*vendorKey // by URL
	inUse   map[string]KeyringStatus
}

// KeyringStatus is the keyring one OS's images were last verified with.
type KeyringStatus struct {
	Mode   string   `json:"mode"`   // fetched, repository or builtin
	Source string   `json:"source"` // the URL, the repository path, or "pxeops"
	Pinned []string `json:"pinned"`
	// For a fetched keyring: when the copy in use was fetched, where it is
	// kept, and the last fetch attempt and its error (the cached copy is
	// used meanwhile).
	Fetched     time.Time `json:"fetched,omitzero"`
	Cache       string    `json:"cache,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// vendorKey is one URL's fetched keyring; its fields are guarded by
// Keyrings.mu, fetch serialises the fetches themselves.
type vendorKey struct {
	fetch   sync.Mutex
	path    string
	data    []byte    // as fetched, verified to hold a pinned primary then
	at      time.Time // when data was fetched
	tried   time.Time // last fetch attempt
	err     string    // of the last attempt; "" after a success
	retry   bool      // whether that error may pass by itself
	loaded  bool      // the cache file was read
	loadErr error
}

// KeyringError is a keyring that could not be had; Retry says whether a
// later pass may succeed without anyone acting (the vendor was
// unreachable), or a person must look (wrong key, bad file).
type KeyringError struct {
	Err   error
	Retry bool
}

func (e *KeyringError) Error() string { return e.Err.Error() }
func (e *KeyringError) Unwrap() error { return e.Err }

// keyringSource says where an OS's keyring comes from.
func keyringSource(o schema.OmahaSettings, osName string) (mode, source string, pins []string) {
	pins = o.Fingerprints
	if len(pins) == 0 {
		pins = DefaultFingerprints(osName)
	}
	switch {
	case o.Keyring != "":
		return KeyringRepository, o.Keyring, pins
	case o.KeyringURL != "":
		return KeyringFetched, o.KeyringURL, pins
	}
	return KeyringBuiltin, "pxeops", pins
}

// For returns the keyring images of osName are verified with.
func (k *Keyrings) For(ctx context.Context, fsys fs.FS, o schema.OmahaSettings, osName string) (*Keyring, error) {
	mode, source, pins := keyringSource(o, osName)
	st := KeyringStatus{Mode: mode, Source: source, Pinned: pins}
	defer func() {
		k.mu.Lock()
		if k.inUse == nil {
			k.inUse = map[string]KeyringStatus{}
		}
		k.inUse[osName] = st
		k.mu.Unlock()
	}()
	switch mode {
	case KeyringRepository:
		data, err := fs.ReadFile(fsys, source)
		if err == nil {
			var kr *Keyring
			if kr, err = NewKeyring(data, pins); err == nil {
				return kr, nil
			}
		}
		st.Error = err.Error()
		return nil, &KeyringError{Err: fmt.Errorf("%s (pxeops.yaml omaha.keyring): %w", source, err)}
	case KeyringBuiltin:
		data, err := BuiltinKeyring(osName)
		if err != nil {
			st.Error = err.Error()
			return nil, &KeyringError{Err: err}
		}
		kr, err := NewKeyring(data, pins)
		if err != nil {
			st.Error = err.Error()
			return nil, &KeyringError{Err: err}
		}
		return kr, nil
	}
	// A refresh that failed is in the status; the kept copy still verifies.
	kr, err := k.vendor(ctx, source, pins, false)
	if kr != nil {
		return kr, nil
	}
	st.Error = err.Error()
	return nil, err
}

// Status returns the keyring each OS's images were last verified with.
func (k *Keyrings) Status() map[string]KeyringStatus {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]KeyringStatus, len(k.inUse))
	for osName, st := range k.inUse {
		if v := k.fetched[st.Source]; st.Mode == KeyringFetched && v != nil {
			st.Fetched, st.Cache, st.LastAttempt, st.Error = v.at, v.path, v.tried, v.err
		}
		st.Pinned = slices.Clone(st.Pinned)
		out[osName] = st
	}
	return out
}

// vendor returns the keyring fetched from url, fetching it when there is
// no usable copy, the copy is older than Refresh, or (unknown) a signature
// names a subkey it lacks; Pause bounds them all. A keyring and an error
// together mean the kept copy is used as the fetch failed.
func (k *Keyrings) vendor(ctx context.Context, url string, pins []string, unknown bool) (*Keyring, error) {
	v := k.entry(url)
	v.fetch.Lock()
	defer v.fetch.Unlock()
	k.mu.Lock()
	if !v.loaded {
		v.loaded = true
		v.data, v.at, v.loadErr = readCache(v.path, pins)
	}
	data, at, tried := v.data, v.at, v.tried
	k.mu.Unlock()
	now := time.Now()
	_, perr := NewKeyring(data, pins) // nil data: no copy; else the pins may have changed
	stale := perr != nil || now.Sub(at) >= cmp.Or(k.Refresh, DefaultKeyringRefresh) || unknown
	paused := !tried.IsZero() && now.Sub(tried) < cmp.Or(k.Pause, DefaultKeyringPause)
	var fetchErr error
	switch {
	case stale && !paused:
		fetchErr = k.fetch(ctx, v, url, pins)
	case stale:
		fetchErr = fmt.Errorf("not fetched again yet: the last attempt was %s ago, under the %s pause", now.Sub(tried).Round(time.Second), cmp.Or(k.Pause, DefaultKeyringPause))
	}
	k.mu.Lock()
	data, lastErr, retry, loadErr := v.data, v.err, v.retry, v.loadErr
	k.mu.Unlock()
	kr, err := NewKeyring(data, pins)
	if data == nil || err != nil {
		// Nothing verified to fall back on: fail closed.
		msg := "no fetch has succeeded yet"
		switch {
		case data != nil:
			msg = err.Error() // the pins changed since it was fetched
		case lastErr != "":
			msg = lastErr
		}
		if loadErr != nil && !errors.Is(loadErr, fs.ErrNotExist) {
			msg += "; the kept copy: " + loadErr.Error()
		}
		return nil, &KeyringError{Err: fmt.Errorf("no keyring from %s (pxeops.yaml omaha.keyringURL): %s", url, msg), Retry: retry}
	}
	kr.refresh = func(ctx context.Context) (*Keyring, error) { return k.vendor(ctx, url, pins, true) }
	if fetchErr != nil && !unknown {
		k.logger().Warn("vendor keyring refresh failed; verifying with the kept copy", "url", url, "fetched", at, "err", fetchErr)
	}
	return kr, fetchErr
}

func (k *Keyrings) entry(url string) *vendorKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fetched == nil {
		k.fetched = map[string]*vendorKey{}
	}
	v := k.fetched[url]
	if v == nil {
		h := sha256.Sum256([]byte(url))
		v = &vendorKey{path: filepath.Join(k.Dir, hex.EncodeToString(h[:16])+".asc")}
		k.fetched[url] = v
	}
	return v
}

// readCache reads a kept keyring, which must still hold a pinned key.
func readCache(path string, pins []string) ([]byte, time.Time, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, safefile.MaxKeySize+1))
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(data) > safefile.MaxKeySize {
		return nil, time.Time{}, fmt.Errorf("%s is larger than %d bytes", path, safefile.MaxKeySize)
	}
	if _, err := NewKeyring(data, pins); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return data, info.ModTime(), nil
}

// fetch gets url and, when it holds a pinned primary key, keeps it; a
// refused or failed fetch leaves the kept copy as it was.
func (k *Keyrings) fetch(ctx context.Context, v *vendorKey, url string, pins []string) error {
	data, err := k.download(ctx, url, pins)
	k.mu.Lock()
	defer k.mu.Unlock()
	v.tried = time.Now()
	if err != nil {
		v.err, v.retry = err.Error(), !errors.As(err, new(permanent))
		return err
	}
	v.data, v.at, v.err, v.retry = data, v.tried, "", false
	if werr := writeKeyring(v.path, data); werr != nil {
		// Verified, so used; only a restart loses it.
		v.err = "fetched, but not kept: " + werr.Error()
		k.logger().Warn("vendor keyring fetched but not kept", "url", url, "err", werr)
	} else {
		k.logger().Info("vendor keyring fetched", "url", url, "pinned", pins, "cache", v.path)
	}
	return nil
}

func (k *Keyrings) download(ctx context.Context, raw string, pins []string) ([]byte, error) {
	if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, permanent{fmt.Errorf("keyring URL %q: want https://", raw)}
	}
	ctx, cancel := context.WithTimeout(ctx, keyringTimeout)
	defer cancel()
	client := *cmp.Or(k.HTTP, http.DefaultClient)
	client.Timeout = keyringTimeout
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirected to %s: want https://", req.URL.Redacted())
		}
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, permanent{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%s answered %s", raw, resp.Status)
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return nil, permanent{err}
		}
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, safefile.MaxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", raw, err)
	}
	if len(data) > safefile.MaxKeySize {
		return nil, permanent{fmt.Errorf("%s: larger than %d bytes", raw, safefile.MaxKeySize)}
	}
	if _, err := NewKeyring(data, pins); err != nil {
		return nil, permanent{fmt.Errorf("%s refused: %w", raw, err)}
	}
	return data, nil
}

// writeKeyring replaces path with data atomically: a crash leaves the old
// copy or the new one, never half of one.
func writeKeyring(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+rand.Text())
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // whatever the umask
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func (k *Keyrings) logger() *slog.Logger { return cmp.Or(k.Log, discard) }

// keyrings is u.Keyrings, or one kept beside the asset store.
func (u *Updater) keyrings() *Keyrings {
	if u.Keyrings != nil {
		return u.Keyrings
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.keys == nil {
		u.keys = &Keyrings{Dir: filepath.Join(u.Store.Dir, KeyringDir), HTTP: u.Store.HTTP, Log: u.Log}
	}
	return u.keys
}

// KeyringStatus is the keyring each OS's images were last verified with,
// by OS; nil before a pass.
func (u *Updater) KeyringStatus() map[string]KeyringStatus {
	if u.Keyrings != nil {
		return u.Keyrings.Status()
	}
	u.mu.Lock()
	k := u.keys
	u.mu.Unlock()
	return k.Status()
}

// KeyringNotices say, for pxeops check, which keyring verifies the
// images each OS tracks with update: omaha.
func KeyringNotices(t *schema.Tree) schema.Diagnostics {
	seen := map[string]bool{}
	var out schema.Diagnostics
	for _, id := range t.ImageIDs() {
		img := t.Images[id]
		if img.Update != "omaha" || seen[img.OS] {
			continue
		}
		seen[img.OS] = true
		mode, source, pins := keyringSource(t.Settings.OmahaFor(img.OS), img.OS)
		var from string
		pos := t.Settings.Pos("omaha.keyringURL")
		switch mode {
		case KeyringFetched:
			from = fmt.Sprintf("the keyring fetched from %s (kept in the asset store's %s/, fetched again daily)", source, KeyringDir)
		case KeyringRepository:
			from, pos = "the keyring from repository file "+source, t.Settings.Pos("omaha.keyring")
		default:
			from = "the " + img.OS + " key built into pxeops"
		}
		out = append(out, schema.Diagnostic{Pos: pos, Severity: schema.Notice,
			Message: fmt.Sprintf("omaha: %s images are verified with %s, pinned to %s", img.OS, from, strings.Join(pins, ", "))})
	}
	return out
}
