package httpserver

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/logtest"
	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"github.com/pxeops/pxeops/internal/tlstest"
)

// serveTLS serves h over TLS with r on a loopback port until the test ends.
func serveTLS(t testing.TB, r *CertReloader, h http.Handler, log *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Server("", h)
	srv.TLSConfig = r.TLSConfig()
	srv.ErrorLog = ErrorLog(log)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// servePair serves the test tree over TLS from p's files and returns
// the files, the reloader and the server's URL.
func servePair(t testing.TB, p tlstest.Pair, log *slog.Logger) (certFile, keyFile string, r *CertReloader, url string) {
	t.Helper()
	certFile, keyFile = p.Files(t)
	r, err := NewCertReloader(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{ServerURL: "http://pxe.test"})
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, r, serveTLS(t, r, h, log)
}

// servedCert makes one request on a new connection (a new handshake) and
// returns the certificate the server presented.
func servedCert(t testing.TB, url string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /healthz over TLS: %d %q", resp.StatusCode, body)
	}
	return resp.TLS.PeerCertificates[0]
}

// Rotating the files while serving: the next handshake presents the new
// certificate, without a restart; a broken rotation (half written, a
// key of another certificate, garbage) keeps the last good one and is
// logged once; fixing it is picked up.
func TestCertRotationWhileServing(t *testing.T) {
	a, b, c := tlstest.New(t, "a"), tlstest.New(t, "b"), tlstest.New(t, "c")
	pool := tlstest.Pool(a, b, c)
	logs := &logtest.Buffer{}
	certFile, keyFile, r, url := servePair(t, a, slog.New(slog.NewTextHandler(logs, nil)))
	want := func(p tlstest.Pair, when string) {
		t.Helper()
		if got := servedCert(t, url, pool); !got.Equal(p.Cert) {
			t.Fatalf("%s: served %q, want %q; log:\n%s", when, got.Subject.CommonName, p.Cert.Subject.CommonName, logs)
		}
	}
	want(a, "at start")

	// Rewritten in place, the way a tool overwrites files.
	b.Write(t, certFile, keyFile)
	want(b, "after rewriting the files in place")

	// Half a rotation: c's certificate beside b's key.
	must(t, os.WriteFile(certFile, c.CertPEM, 0o644))
	for range 3 {
		want(b, "with a certificate not matching the key")
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("a broken pair logged %d times over 3 handshakes, want once:\n%s", n, logs)
	}
	if st := r.Status(); st.Error == "" || st.Subject != "CN=b" {
		t.Errorf("status with a broken pair on disk = %+v, want b served and the error", st)
	}
	must(t, os.WriteFile(keyFile, c.KeyPEM, 0o600))
	want(c, "after the rotation completed")
	if st := r.Status(); st.Error != "" || st.Subject != "CN=c" {
		t.Errorf("status after the fix = %+v, want c and no error", st)
	}

	// Garbage keeps c.
	must(t, os.WriteFile(keyFile, []byte("not a key\n"), 0o600))
	want(c, "with a garbage key")

	// Replaced by rename (cert-manager, a Kubernetes Secret's ..data swap).
	for _, f := range []struct {
		name string
		data []byte
	}{{certFile, a.CertPEM}, {keyFile, a.KeyPEM}} {
		tmp := f.name + ".new"
		must(t, os.WriteFile(tmp, f.data, 0o600))
		must(t, os.Rename(tmp, f.name))
	}
	want(a, "after replacing the files by rename")
	if n := strings.Count(logs.String(), "certificate reloaded"); n != 3 {
		t.Errorf("%d reloads logged, want 3 (b, c, a):\n%s", n, logs)
	}
}

// The first pair must load; a named pipe is refused at once, never
// waited on.
func TestCertReloaderRefusesABadStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b := tlstest.New(t, "a"), tlstest.New(t, "b")
	must(t, os.WriteFile(certFile, a.CertPEM, 0o644))
	must(t, os.WriteFile(keyFile, b.KeyPEM, 0o600))
	if _, err := NewCertReloader(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched pair: %v, want a refusal", err)
	}
	fifo := filepath.Join(dir, "fifo")
	fifotest.Mkfifo(t, fifo)
	fifotest.Returns(t, "loading a FIFO as key", func() {
		if _, err := NewCertReloader(certFile, fifo, nil); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("a FIFO as key: %v, want a refusal", err)
		}
	})
}

// A failed handshake is a log line per interval, through slog, not one
// per attempt on the standard logger.
func TestHandshakeFailuresRateLimited(t *testing.T) {
	logs := &logtest.Buffer{}
	_, _, _, url := servePair(t, tlstest.New(t, "a"), slog.New(slog.NewTextHandler(logs, nil)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}, DisableKeepAlives: true}}
	for range 5 {
		if _, err := client.Get(url); err == nil {
			t.Fatal("a client not trusting the certificate got through")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "TLS handshake failed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("failed handshakes not logged:\n%s", logs)
		}
	}
	if n := strings.Count(logs.String(), "TLS handshake failed"); n != 1 {
		t.Errorf("%d lines for 5 failed handshakes within the interval, want 1:\n%s", n, logs)
	}
}

// BenchmarkIPXEOverTLS is a new connection per request: handshake
// (ECDSA P-256, TLS 1.3) plus GET /ipxe.
func BenchmarkIPXEOverTLS(b *testing.B) {
	p := tlstest.New(b, "bench")
	_, _, _, url := servePair(b, p, slog.New(slog.DiscardHandler))
	url += "/ipxe?mac=52:54:00:00:00:01"
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlstest.Pool(p)}, DisableKeepAlives: true}}
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// A rewrite that leaves size and mtime as they were (two writes within
// one tick of the kernel's coarse clock) is still seen: files changed
// less than racyWindow before they were read are compared by content.
func TestCertRotationWithinOneClockTick(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b := tlstest.New(t, "a"), tlstest.New(t, "b")
	// Same sizes: PEM allows text around the block.
	for len(a.CertPEM) < len(b.CertPEM) {
		a.CertPEM = append(a.CertPEM, '\n')
	}
	for len(b.CertPEM) < len(a.CertPEM) {
		b.CertPEM = append(b.CertPEM, '\n')
	}
	a.Write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile, nil)
	must(t, err)
	var mtimes []time.Time
	for _, f := range []string{certFile, keyFile} {
		info, err := os.Stat(f)
		must(t, err)
		mtimes = append(mtimes, info.ModTime())
	}
	b.Write(t, certFile, keyFile)
	for i, f := range []string{certFile, keyFile} {
		must(t, os.Chtimes(f, mtimes[i], mtimes[i]))
	}
	if st := r.stamps(); st != r.loaded {
		t.Fatalf("the rewrite changed the stamps (%+v, loaded %+v): the test does not test the racy case", st, r.loaded)
	}
	url := serveTLS(t, r, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }), slog.New(slog.DiscardHandler))
	if got := servedCert(t, url, tlstest.Pool(a, b)); !got.Equal(b.Cert) {
		t.Errorf("served %q after a rewrite within one tick, want b", got.Subject.CommonName)
	}
}

// A pair whose mtime is far in the future (clock skew, touch -d) is not
// "racy" forever: handshakes after the first do not read it again.
func TestCertWithFutureMtimeNotReadEachHandshake(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	tlstest.New(t, "a").Write(t, certFile, keyFile)
	future := time.Now().Add(time.Hour)
	for _, f := range []string{certFile, keyFile} {
		must(t, os.Chtimes(f, future, future))
	}
	r, err := NewCertReloader(certFile, keyFile, nil)
	must(t, err)
	_, err = r.GetCertificate(nil)
	must(t, err)
	checked := r.checked
	time.Sleep(5 * time.Millisecond)
	_, err = r.GetCertificate(nil)
	must(t, err)
	if !r.checked.Equal(checked) {
		t.Errorf("the pair was read again by a handshake although nothing changed (checked %v, then %v)", checked, r.checked)
	}
}
