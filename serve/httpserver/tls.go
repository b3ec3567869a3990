package httpserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/ratelog"
	"github.com/pxeops/pxeops/internal/safefile"
)

// racyWindow: a file changed less than this before it was last read may
// change again without its size or mtime showing it (mtime has the
// kernel's coarse clock, a few ms), so until it is older the reloader
// compares contents. Git's "racy index" problem, with git's answer.
const racyWindow = 2 * time.Second

// CertReloader serves a certificate and key pair that may be replaced
// on disk while the server runs (cert-manager, a mounted Kubernetes
// Secret, certbot): each handshake stats both files, and a change loads
// the new pair for that handshake and the ones after. A pair that does
// not load (a key not matching the certificate, half of a rotation
// written) keeps the last good one serving; it is logged once, and
// /status says so until a good pair replaces it.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	pem      [2][]byte    // what cert was loaded from
	loaded   [2]fileStamp // the files as they were when cert was loaded
	failed   [2]fileStamp // the pair that last failed, not retried until it changes
	checked  time.Time    // when the files' contents were last compared with pem
	loadErr  string       // why the files on disk are not served; empty when they are
	loadedAt time.Time
}

// fileStamp tells whether a file changed: editors and cert-manager
// replace it (inode), tools rewrite it in place (size, mtime).
type fileStamp struct {
	size     int64
	mtime    time.Time
	ino, dev uint64
	missing  bool
}

func stampOf(name string) fileStamp {
	info, err := os.Stat(name)
	if err != nil {
		return fileStamp{missing: true}
	}
	st := fileStamp{size: info.Size(), mtime: info.ModTime()}
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		st.ino, st.dev = sys.Ino, uint64(sys.Dev)
	}
	return st
}

// LoadKeyPair reads a PEM certificate chain and its private key, as
// regular files of at most safefile.MaxKeySize.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, [2][]byte, error) {
	var pem [2][]byte
	for i, name := range []string{certFile, keyFile} {
		b, err := safefile.ReadFile(name, safefile.MaxKeySize)
		if err != nil {
			return nil, pem, err
		}
		pem[i] = b
	}
	cert, err := tls.X509KeyPair(pem[0], pem[1])
	if err != nil {
		// crypto/tls' errors never quote the key.
		return nil, pem, fmt.Errorf("certificate and key: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, pem, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	return &cert, pem, nil
}

// NewCertReloader loads the pair; it fails when the pair does not load.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	st := r.stamps()
	cert, pem, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r.cert, r.pem, r.loaded, r.checked, r.loadedAt = cert, pem, st, now, now
	return r, nil
}

func (r *CertReloader) stamps() [2]fileStamp {
	return [2]fileStamp{stampOf(r.certFile), stampOf(r.keyFile)}
}

// GetCertificate is tls.Config.GetCertificate: the current pair,
// reloaded first when its files changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := r.stamps() // outside the lock: handshakes only wait for each other on a change
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if (st == r.loaded || st == r.failed) && !r.racy(st) {
		return r.cert, nil
	}
	cert, pem, err := LoadKeyPair(r.certFile, r.keyFile)
	r.checked = now
	switch {
	case err != nil:
		if st != r.failed || err.Error() != r.loadErr { // once per broken pair
			r.log.Warn("TLS: the new certificate and key do not load; serving the previous ones", "err", err,
				"cert", r.certFile, "key", r.keyFile, "serving_not_after", r.cert.Leaf.NotAfter)
		}
		r.failed, r.loadErr = st, err.Error()
	case bytes.Equal(pem[0], r.pem[0]) && bytes.Equal(pem[1], r.pem[1]):
		r.loaded, r.failed, r.loadErr = st, [2]fileStamp{}, "" // touched, or rewritten the same
	default:
		r.cert, r.pem, r.loaded, r.failed, r.loadErr, r.loadedAt = cert, pem, st, [2]fileStamp{}, "", now
		r.log.Info("TLS: certificate reloaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	return r.cert, nil
}

// racy reports whether the files were last read so soon after they were
// written that a later write could leave st unchanged. An mtime further
// in the future than that (clock skew, touch -d) is not: a later write
// changes it, and treating it as racy would re-read both files in every
// handshake, one handshake at a time.
func (r *CertReloader) racy(st [2]fileStamp) bool {
	for _, s := range st {
		if d := r.checked.Sub(s.mtime); d < racyWindow && d > -racyWindow {
			return true
		}
	}
	return false
}

// TLSConfig is the HTTPS listener's: the reloaded pair, TLS 1.2 or later
// (Go's default suites; Ignition and cloud-init fetch with Go's and
// OpenSSL's clients).
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// CertStatus is the certificate's part of /status.
type CertStatus struct {
	Subject  string    `json:"subject"`
	Names    []string  `json:"names,omitempty"` // DNS and IP subject alternative names
	NotAfter time.Time `json:"not_after"`
	LoadedAt time.Time `json:"loaded_at"`
	// Error is why the files on disk now are not what is served.
	Error string `json:"error,omitempty"`
}

// Status describes the pair being served.
func (r *CertReloader) Status() CertStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	leaf := r.cert.Leaf
	st := CertStatus{Subject: leaf.Subject.String(), NotAfter: leaf.NotAfter, LoadedAt: r.loadedAt, Error: r.loadErr}
	st.Names = append(st.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		st.Names = append(st.Names, ip.String())
	}
	return st
}

// Register adds pxeops_tls_certificate_expiry_timestamp_seconds, when
// the served certificate expires, to reg: alert on it.
func (r *CertReloader) Register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pxeops_tls_certificate_expiry_timestamp_seconds",
		Help: "When the certificate served over HTTPS expires (its notAfter), in seconds since the epoch.",
	}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(r.cert.Leaf.NotAfter.Unix())
	}))
}

// handshakeWarnEvery spaces the log lines of failed TLS handshakes:
// scanners and clients that do not trust the certificate cause them.
const handshakeWarnEvery = 10 * time.Second

// ErrorLog is an http.Server's ErrorLog writing to log: failed TLS
// handshakes once per 10 s with a count, anything else as a warning.
// Without it net/http writes to the standard logger, past slog.
func ErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(&serverErrors{log: logger, handshakes: ratelog.New(logger, handshakeWarnEvery)}, "", 0)
}

type serverErrors struct {
	log        *slog.Logger
	handshakes *ratelog.Logger
}

func (w *serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if rest, ok := strings.CutPrefix(msg, "http: TLS handshake error from "); ok {
		w.handshakes.Warn("tls-handshake", "TLS handshake failed", "detail", rest)
	} else {
		w.log.Warn("http server", "err", msg)
	}
	return len(p), nil
}
