package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/httpserver"
)

// TLSAdmin is the HTTPS listener and the admin listener of a Config.
type TLSAdmin struct {
	// TLSCert and TLSKey (PEM files) turn HTTPS on at HTTPSAddr, default
	// ":8443", beside HTTP, which firmware and iPXE builds without TLS
	// keep using: the same endpoints on both, the pair reloaded when its
	// files change. HTTPSURL is where machines reach HTTPS, default
	// https://<ServerURL's host>:<HTTPSAddr's port>; templates get it as
	// {{ .ConfigServerURL }}.
	TLSCert, TLSKey string
	HTTPSAddr       string
	HTTPSListener   net.Listener
	HTTPSURL        string

	// AdminAddr serves /status, /metrics and POST /hooks/git (and the
	// probes), which the boot listeners then answer 404; empty: the
	// boot listeners serve them, as before.
	AdminAddr     string
	AdminListener net.Listener
}

func (t *TLSAdmin) tlsOn() bool { return t.TLSCert != "" || t.TLSKey != "" }

// validateTLSAdmin checks the TLS and admin fields and fills in their
// defaults; c.ServerURL is set already.
func (c *Config) validateTLSAdmin() error {
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return fieldErr("TLSKey", "", "required with a TLS certificate: the certificate's private key")
	case c.TLSKey != "" && c.TLSCert == "":
		return fieldErr("TLSCert", "", "required with a TLS key: the certificate (chain) the key belongs to")
	case !c.tlsOn() && (c.HTTPSAddr != "" || c.HTTPSListener != nil):
		return fieldErr("HTTPSAddr", c.HTTPSAddr, "HTTPS needs a TLS certificate and key")
	case !c.tlsOn() && c.HTTPSURL != "":
		return fieldErr("HTTPSURL", c.HTTPSURL, "nothing serves HTTPS: it needs a TLS certificate and key")
	}
	if c.tlsOn() {
		if _, _, err := httpserver.LoadKeyPair(c.TLSCert, c.TLSKey); err != nil {
			if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == c.TLSKey {
				return &FieldError{Field: "TLSKey", Value: c.TLSKey, Err: err}
			}
			return &FieldError{Field: "TLSCert", Value: c.TLSCert, Err: err}
		}
		if c.HTTPSListener == nil {
			if c.HTTPSAddr == "" {
				c.HTTPSAddr = ":8443"
			}
			if err := checkHostPort(c.HTTPSAddr, ":8443"); err != nil {
				return &FieldError{Field: "HTTPSAddr", Value: c.HTTPSAddr, Err: err}
			}
			if sameSocket(c.HTTPSAddr, c.httpAddr()) {
				return fieldErr("HTTPSAddr", c.HTTPSAddr, "the HTTP listener has that port: HTTPS needs one of its own")
			}
		}
		if err := c.checkHTTPSURL(); err != nil {
			return err
		}
	}
	if c.AdminAddr != "" && c.AdminListener == nil {
		if err := checkHostPort(c.AdminAddr, "127.0.0.1:9090"); err != nil {
			return &FieldError{Field: "AdminAddr", Value: c.AdminAddr, Err: err}
		}
		for _, other := range []string{c.httpAddr(), c.httpsAddr()} {
			if sameSocket(c.AdminAddr, other) {
				return fieldErr("AdminAddr", c.AdminAddr, "a boot listener has that port: the admin listener needs one of its own")
			}
		}
	}
	return nil
}

// checkHTTPSURL checks HTTPSURL, or derives it from ServerURL's host and
// the HTTPS port.
func (c *Config) checkHTTPSURL() error {
	if c.HTTPSURL == "" {
		u, err := url.Parse(c.ServerURL)
		if err != nil || u.Hostname() == "" {
			return fieldErr("HTTPSURL", "", "cannot be derived from the server URL %q: give it", c.ServerURL)
		}
		_, port, _ := net.SplitHostPort(c.httpsAddr())
		c.HTTPSURL = "https://" + net.JoinHostPort(u.Hostname(), port)
		return nil
	}
	u, err := url.Parse(c.HTTPSURL)
	switch {
	case err != nil:
		return &FieldError{Field: "HTTPSURL", Value: c.HTTPSURL, Err: err}
	case u.Scheme != "https" || u.Host == "":
		return fieldErr("HTTPSURL", c.HTTPSURL, "want https://host[:port][/path]")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fieldErr("HTTPSURL", c.HTTPSURL, "want https://host[:port][/path], without user, query or fragment")
	}
	return nil
}

func (c *Config) httpsAddr() string {
	if c.HTTPSListener != nil {
		return c.HTTPSListener.Addr().String()
	}
	return c.HTTPSAddr
}

// sameSocket reports whether listening on a would take b's port: the
// same port on the same host, or on every address.
func sameSocket(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	any := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || any(ha) || any(hb)
}

// renderOptions are what the reconciler renders snapshots with.
func (c *Config) renderOptions() render.Options {
	return render.Options{ServerURL: c.ServerURL, ConfigServerURL: c.HTTPSURL}
}

// certs loads the TLS pair and its metric; nil when TLS is off.
func (c *Config) certs(log *slog.Logger, reg prometheus.Registerer) (*httpserver.CertReloader, error) {
	if !c.tlsOn() {
		return nil, nil
	}
	r, err := httpserver.NewCertReloader(c.TLSCert, c.TLSKey, log)
	if err != nil {
		return nil, &FieldError{Field: "TLSCert", Value: c.TLSCert, Err: err}
	}
	r.Register(reg)
	return r, nil
}

// handlers makes the boot handler and, with AdminAddr, the admin one.
func (c *Config) handlers(snaps httpserver.Snapshots, opts httpserver.Options) (boot, admin http.Handler, err error) {
	if c.AdminAddr == "" && c.AdminListener == nil {
		boot, err = httpserver.New(snaps, opts)
		return boot, nil, err
	}
	return httpserver.NewSplit(snaps, opts)
}

// extraServer is the HTTPS or the admin server.
type extraServer struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

func (e *extraServer) serve() error {
	if e.srv.TLSConfig != nil {
		return e.srv.ServeTLS(e.ln, "", "")
	}
	return e.srv.Serve(e.ln)
}

// bindExtra binds HTTPS and the admin listener, when on; closers gets
// what must be closed if a later bind fails.
func (c *Config) bindExtra(boot, admin http.Handler, certs *httpserver.CertReloader, log *slog.Logger, closers *[]func()) ([]*extraServer, error) {
	var out []*extraServer
	bind := func(name, field, addr string, ln net.Listener, h http.Handler) (*extraServer, error) {
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", addr); err != nil {
				return nil, &FieldError{Field: field, Value: addr, Err: fmt.Errorf("%w (another server on that port?)", err)}
			}
			*closers = append(*closers, func() { ln.Close() })
		}
		log.Info("listening", "component", name, "addr", ln.Addr().String())
		e := &extraServer{name: name, srv: httpserver.Server(addr, h), ln: ln}
		out = append(out, e)
		return e, nil
	}
	if certs != nil {
		e, err := bind("https", "HTTPSAddr", c.HTTPSAddr, c.HTTPSListener, boot)
		if err != nil {
			return nil, err
		}
		e.srv.TLSConfig = certs.TLSConfig()
		e.srv.ErrorLog = httpserver.ErrorLog(log.With("component", "https"))
	}
	if admin != nil {
		if _, err := bind("admin", "AdminAddr", c.AdminAddr, c.AdminListener, admin); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shutdownServers stops the servers at once and lets their in-flight
// requests finish until ctx ends, then cuts them off.
func shutdownServers(ctx context.Context, log *slog.Logger, srv *http.Server, extra []*extraServer) {
	all := []*http.Server{srv}
	for _, e := range extra {
		all = append(all, e.srv)
	}
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			if err := s.Shutdown(ctx); err != nil {
				log.Warn("in-flight requests cut off at the shutdown timeout", "err", err)
				s.Close()
			}
		})
	}
	wg.Wait()
}
