package httpserver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
)

func assetServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "assets")
	for name, body := range map[string]string{
		"assets/flatcar/vmlinuz":     strings.Repeat("K", 10000),
		"assets/flatcar/config.json": `{"a":1}`,
		"assets-private/secret":      "secret",
		"outside.txt":                "outside",
		"assets/flatcar/sub/.keep":   "",
		"assets/.partial/download-1": "unverified",
		"assets/flatcar/.hidden":     "unverified",
	} {
		p := filepath.Join(base, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	must(t, os.Symlink("../outside.txt", filepath.Join(root, "escape")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "absolute")))
	must(t, os.Symlink("flatcar/vmlinuz", filepath.Join(root, "inside")))
	h, err := New(fixedSnapshots{}, Options{AssetsDir: root})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestAssetsConfinedToRoot(t *testing.T) {
	srv, _ := assetServer(t)
	for _, path := range []string{
		"/assets/escape",              // symlink out of the root
		"/assets/absolute",            // absolute symlink
		"/assets/../outside.txt",      // cleaned by the client or mux, never outside
		"/assets/%2e%2e/outside.txt",  // encoded dot-dot
		"/assets/..%2foutside.txt",    // encoded slash
		"/assets/flatcar/",            // no directory listings
		"/assets/flatcar",             // a directory without the slash
		"/assets/",                    // the root itself
		"/assets-private/secret",      // a sibling with the same prefix
		"/assets/flatcar/missing",     // plain miss
		"/assets/.partial/download-1", // a download whose signature is not checked yet
		"/assets/flatcar/.hidden",     // any dot path
	} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		resp, body := do(t, req)
		if resp.StatusCode == http.StatusOK || strings.Contains(body, "outside") || strings.Contains(body, "secret") || strings.Contains(body, "root:") || strings.Contains(body, "unverified") {
			t.Errorf("GET %s = %d %q; want refused", path, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/assets/inside", nil)
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK || len(body) != 10000 {
		t.Errorf("symlink inside the root: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestAssetsRangesETagsAndTypes(t *testing.T) {
	srv, root := assetServer(t)
	req, _ := http.NewRequest("GET", srv.URL+"/assets/flatcar/vmlinuz", nil)
	resp, body := do(t, req)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || len(body) != 10000 || etag == "" ||
		resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET: %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
	}

	req.Header.Set("Range", "bytes=100-199")
	resp, body = do(t, req)
	if resp.StatusCode != http.StatusPartialContent || body != strings.Repeat("K", 100) || resp.Header.Get("Content-Range") != "bytes 100-199/10000" {
		t.Errorf("Range: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	req.Header.Del("Range")
	req.Header.Set("If-None-Match", etag)
	if resp, _ = do(t, req); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", resp.StatusCode)
	}
	must(t, os.WriteFile(filepath.Join(root, "flatcar/vmlinuz"), bytes.Repeat([]byte("N"), 10001), 0o644))
	if resp, _ = do(t, req); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Errorf("after a change: %d, ETag %s (was %s)", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}

	req, _ = http.NewRequest("GET", srv.URL+"/assets/flatcar/config.json", nil)
	if resp, _ = do(t, req); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("config.json content type %q", resp.Header.Get("Content-Type"))
	}
	req, _ = http.NewRequest("HEAD", srv.URL+"/assets/flatcar/vmlinuz", nil)
	if resp, body = do(t, req); resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != 10001 {
		t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
}

// readFromWriter records whether io.Copy reached its ReadFrom, the path
// that net/http turns into sendfile.
type readFromWriter struct {
	httptest.ResponseRecorder
	usedReadFrom bool
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.usedReadFrom = true
	return io.Copy(&w.ResponseRecorder, r)
}

// The metrics wrapper must not hide ReadFrom, or assets lose sendfile.
func TestInstrumentKeepsReadFrom(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 1<<20), 0o644))
	h, err := New(fixedSnapshots{}, Options{AssetsDir: dir})
	must(t, err)
	w := &readFromWriter{ResponseRecorder: *httptest.NewRecorder()}
	h.ServeHTTP(w, httptest.NewRequest("GET", "/assets/big", nil))
	if w.Code != http.StatusOK || w.Body.Len() != 1<<20 || !w.usedReadFrom {
		t.Errorf("code %d, %d bytes, ReadFrom used: %v", w.Code, w.Body.Len(), w.usedReadFrom)
	}
}

// With an iPXE directory, its binaries are served under /ipxe-bin/ for
// UEFI HTTP boot, confined the same way.
func TestIPXEBinaries(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "snponly.efi"), []byte("EFI binary"), 0o644))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "escape.efi")))
	h, err := New(fixedSnapshots{}, Options{IPXEDir: dir})
	must(t, err)
	if w := get(t, h, "/ipxe-bin/snponly.efi"); w.Code != http.StatusOK || w.Body.String() != "EFI binary" {
		t.Errorf("snponly.efi: %d %q", w.Code, w.Body.String())
	}
	if w := get(t, h, "/ipxe-bin/escape.efi"); w.Code == http.StatusOK {
		t.Errorf("symlink out of the iPXE directory served: %q", w.Body.String())
	}
	if w := get(t, httpHandlerWithout(t), "/ipxe-bin/snponly.efi"); w.Code != http.StatusNotFound {
		t.Errorf("no iPXE directory configured: %d", w.Code)
	}
}

func httpHandlerWithout(t *testing.T) http.Handler {
	h, err := New(fixedSnapshots{}, Options{})
	must(t, err)
	return h
}

// A named pipe in the assets or iPXE directory is answered 404 at once,
// like a missing file, and parks nothing: opening it for reading used to
// wait for a writer, a goroutine, a thread and a descriptor per request.
func TestAssetsNeverWaitOnFIFO(t *testing.T) {
	dir := t.TempDir()
	h, err := New(fixedSnapshots{}, Options{AssetsDir: dir, IPXEDir: dir})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	fifotest.Mkfifo(t, filepath.Join(dir, "fifo")) // after srv: its cleanup releases waiting handlers before srv.Close waits for them
	must(t, os.Symlink("fifo", filepath.Join(dir, "link.efi")))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	before := runtime.NumGoroutine()
	const requests = 200
	fifotest.Returns(t, "GET of a FIFO", func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range requests {
			path := []string{"/assets/fifo", "/assets/link.efi", "/ipxe-bin/fifo", "/ipxe-bin/link.efi"}[i%4]
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				resp, err := client.Get(srv.URL + path)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
				}
			})
		}
		wg.Wait()
	})
	client.CloseIdleConnections()
	// Nothing is left waiting: back to the goroutines there were before,
	// give or take the server's idle connections winding down.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+4 {
		t.Errorf("%d goroutines after %d requests, %d before", n, requests, before)
	}
}
