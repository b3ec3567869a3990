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
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
)

// PartialDir is where downloads are written until they are verified. Its
// name starts with a dot, and the HTTP server never serves such paths.
const PartialDir = ".partial"

// ErrNotPublished means the release server does not have the file (yet):
// the release is announced before every mirror has it.
var ErrNotPublished = errors.New("not published yet")

// Store is the content-addressed asset store: a verified file named name
// with SHA-256 sum lives at <Dir>/<sum>/<name>, served at
// /assets/<sum>/<name>. Files are written under .partial, fsynced,
// verified, and only then renamed into place, so nothing half-written or
// unverified is ever at a served path.
type Store struct {
	Dir     string
	HTTP    *http.Client
	MaxSize int64 // per file; default 4 GiB
	Log     *slog.Logger
	// Progress, when set (a terminal), gets a progress bar; log lines
	// report progress either way.
	Progress io.Writer
	// Attempts per file (default 4), waiting Backoff (default 2s), then
	// twice as long, between them.
	Attempts int
	Backoff  time.Duration
	// Stall aborts a download (to be retried) when no byte arrived for
	// this long; default one minute.
	Stall time.Duration
}

// Asset is a verified file in the store.
type Asset struct {
	Name   string
	SHA256 string
	Size   int64
	Signer Signer
}

// Path is the asset's path under the store, and under /assets/.
func (a Asset) Path() string { return a.SHA256 + "/" + a.Name }

// Mirror downloads url and url.sig, checks the signature with keys and
// keeps the file. Transient failures are retried with backoff; a missing
// file (ErrNotPublished), a file over the size cap and a bad signature
// are not.
func (s *Store) Mirror(ctx context.Context, url, name string, keys *Keyring) (Asset, error) {
	if err := os.MkdirAll(filepath.Join(s.Dir, PartialDir), 0o755); err != nil {
		return Asset{}, fmt.Errorf("asset store: %w", err)
	}
	s.removeStale()
	if a, ok := s.mirrored(ctx, url, name, keys); ok {
		return a, nil
	}
	var sig []byte
	err := s.retry(ctx, url+".sig", func() (err error) {
		sig, err = s.fetchSignature(ctx, url+".sig")
		return err
	})
	if err != nil {
		return Asset{}, err
	}
	var tmp string
	var asset Asset
	err = s.retry(ctx, url, func() (err error) {
		tmp, asset, err = s.download(ctx, url)
		return err
	})
	if err != nil {
		return Asset{}, err
	}
	defer os.Remove(tmp) // a no-op once it is renamed into place
	asset.Name = name
	f, err := safefile.Open(tmp)
	if err != nil {
		return Asset{}, err
	}
	asset.Signer, err = keys.Verify(ctx, f, sig)
	f.Close()
	if err != nil {
		return Asset{}, &VerifyError{URL: url, Err: err}
	}
	if err := s.install(tmp, sig, asset); err != nil {
		return Asset{}, fmt.Errorf("asset store: %w", err)
	}
	s.remember(url, asset)
	return asset, nil
}

// IndexDir maps each mirrored URL to the asset it became, so a release
// that waits for review is not downloaded again on every pass.
const IndexDir = ".index"

func (s *Store) indexPath(url string) string {
	h := sha256.Sum256([]byte(url))
	return filepath.Join(s.Dir, IndexDir, hex.EncodeToString(h[:]))
}

func (s *Store) remember(url string, a Asset) {
	if err := os.MkdirAll(filepath.Join(s.Dir, IndexDir), 0o755); err != nil {
		return // only costs a download next time
	}
	tmp := filepath.Join(s.Dir, PartialDir, "index-"+rand.Text())
	if writeSynced(tmp, []byte(a.SHA256+"/"+a.Name)) == nil && os.Rename(tmp, s.indexPath(url)) != nil {
		os.Remove(tmp)
	}
}

// mirrored finds url's asset from an earlier pass and checks its kept
// signature again with today's keys.
func (s *Store) mirrored(ctx context.Context, url, name string, keys *Keyring) (Asset, bool) {
	// Kept files are opened through safefile: whoever else writes to the
	// assets directory cannot park a pass on a named pipe.
	ref, err := safefile.ReadFile(s.indexPath(url), 4096)
	sum, kept, _ := strings.Cut(string(ref), "/")
	if err != nil || kept != name || len(sum) != 64 {
		return Asset{}, false
	}
	path := filepath.Join(s.Dir, sum, name)
	sig, err := safefile.ReadFile(path+".sig", maxSignature)
	if err != nil {
		return Asset{}, false
	}
	f, err := safefile.Open(path)
	if err != nil {
		return Asset{}, false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Asset{}, false
	}
	signer, err := keys.Verify(ctx, f, sig)
	if err != nil {
		s.logger().Warn("a kept asset no longer verifies; downloading it again", "url", url, "err", err)
		return Asset{}, false
	}
	return Asset{Name: name, SHA256: sum, Size: info.Size(), Signer: signer}, true
}

// VerifyError is a file whose signature did not check out; it was not
// kept. Retrying does not help: a person must look.
type VerifyError struct {
	URL string
	Err error
}

func (e *VerifyError) Error() string { return e.URL + ": " + e.Err.Error() + "; nothing kept" }
func (e *VerifyError) Unwrap() error { return e.Err }

// permanent marks errors a retry cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (s *Store) retry(ctx context.Context, url string, attempt func() error) error {
	tries, wait := s.Attempts, s.Backoff
	if tries <= 0 {
		tries = 4
	}
	if wait <= 0 {
		wait = 2 * time.Second
	}
	var err error
	for i := 1; ; i++ {
		err = attempt()
		var p permanent
		if err == nil || errors.As(err, &p) || ctx.Err() != nil || i == tries {
			break
		}
		s.logger().Warn("download failed; retrying", "url", url, "attempt", i, "of", tries, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait *= 2
	}
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, permanent{err}
	}
	resp, err := cmp.Or(s.HTTP, http.DefaultClient).Do(req)
	if err != nil {
		return nil, err
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return resp, nil
	case code == http.StatusNotFound || code == http.StatusGone:
		resp.Body.Close()
		return nil, permanent{ErrNotPublished}
	case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
		resp.Body.Close()
		return nil, fmt.Errorf("server answered %s", resp.Status)
	default:
		resp.Body.Close()
		return nil, permanent{fmt.Errorf("server answered %s", resp.Status)}
	}
}

func (s *Store) fetchSignature(ctx context.Context, url string) ([]byte, error) {
	resp, err := s.get(ctx, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sig, err := io.ReadAll(io.LimitReader(resp.Body, maxSignature+1))
	if err != nil {
		return nil, err
	}
	if len(sig) > maxSignature {
		return nil, permanent{fmt.Errorf("signature larger than %d bytes", maxSignature)}
	}
	return sig, nil
}

// download streams url into a new file under .partial, hashing it, and
// fsyncs it. The caller removes the file.
func (s *Store) download(ctx context.Context, url string) (string, Asset, error) {
	limit := s.MaxSize
	if limit <= 0 {
		limit = 4 << 30
	}
	stall := s.Stall
	if stall <= 0 {
		stall = time.Minute
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("stalled: no data for %s", stall)
	watchdog := time.AfterFunc(stall, func() { cancel(stalled) })
	defer watchdog.Stop()
	resp, err := s.get(ctx, url)
	if err != nil {
		return "", Asset{}, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return "", Asset{}, permanent{fmt.Errorf("%d bytes is over the %d-byte cap", resp.ContentLength, limit)}
	}
	f, err := os.CreateTemp(filepath.Join(s.Dir, PartialDir), "download-*")
	if err != nil {
		return "", Asset{}, permanent{err}
	}
	fail := func(err error) (string, Asset, error) {
		f.Close()
		os.Remove(f.Name())
		return "", Asset{}, err
	}
	h := sha256.New()
	prog := newProgress(s.logger(), s.Progress, url, resp.ContentLength)
	prog.onData = func() { watchdog.Reset(stall) }
	n, err := io.Copy(io.MultiWriter(f, h, prog), io.LimitReader(resp.Body, limit+1))
	prog.done(err == nil)
	switch {
	case err != nil && context.Cause(ctx) == stalled:
		return fail(stalled)
	case err != nil:
		return fail(err)
	case n > limit:
		return fail(permanent{fmt.Errorf("more than the %d-byte cap", limit)})
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return fail(fmt.Errorf("truncated: %d of %d bytes", n, resp.ContentLength))
	}
	if err := f.Sync(); err != nil {
		return fail(permanent{err})
	}
	if err := f.Close(); err != nil {
		return fail(permanent{err})
	}
	return f.Name(), Asset{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// install renames a verified download into place, its signature first:
// the file's presence is what makes the asset.
func (s *Store) install(tmp string, sig []byte, a Asset) error {
	dir := filepath.Join(s.Dir, a.SHA256)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sigTmp := filepath.Join(s.Dir, PartialDir, "sig-"+rand.Text())
	if err := writeSynced(sigTmp, sig); err != nil {
		return err
	}
	if err := os.Rename(sigTmp, filepath.Join(dir, a.Name+".sig")); err != nil {
		os.Remove(sigTmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, a.Name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeStale deletes partial files a killed process left behind; a day
// is far longer than any download, so a running one is never touched.
func (s *Store) removeStale() {
	dir := filepath.Join(s.Dir, PartialDir)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (s *Store) logger() *slog.Logger { return cmp.Or(s.Log, discard) }

func writeSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
