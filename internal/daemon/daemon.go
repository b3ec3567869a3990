package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/reconcile"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/serve/bootfiles"
	"github.com/pxeops/pxeops/serve/httpserver"
	"github.com/pxeops/pxeops/serve/proxydhcp"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source"
)

// Status is the /status document.
type Status struct {
	Version   string `json:"version"`
	ServerURL string `json:"server_url"`
	reconcile.Status
	Source source.State `json:"source"`
	// Access is the access mode (--access).
	Access string `json:"access"`
	// Down is the component that stopped, and why; the daemon is
	// shutting down.
	Down  string      `json:"down,omitempty"`
	Omaha OmahaStatus `json:"omaha"`
	// Discovery is the discovery pass inside serve (discovery.serve).
	Discovery DiscoveryStatus `json:"discovery"`
	// TLS is the certificate served over HTTPS, when on.
	TLS *httpserver.CertStatus `json:"tls,omitempty"`
}

// OmahaStatus is the updater's and responder's part of /status.
type OmahaStatus struct {
	// Updater is "on", or "off: <why>".
	Updater string                `json:"updater"`
	Error   string                `json:"error,omitempty"`
	Images  map[string]OmahaImage `json:"images"`
	// Keyrings, by OS, are what releases were last verified with: mode
	// (fetched, repository, builtin), source, and for a fetched one when
	// it was fetched and the last refresh's error.
	Keyrings map[string]updater.KeyringStatus `json:"keyrings,omitempty"`
	Census   omaha.Census                     `json:"census"`
}

// OmahaImage is one image in /status: the updater's state (when it
// tracks the image) and the hosts on each of its versions.
type OmahaImage struct {
	updater.ImageStatus
	Census *omaha.ImageCensus `json:"census,omitempty"`
}

// omahaImages joins the updater's states and the census per image.
func omahaImages(states map[string]updater.ImageStatus, census map[string]omaha.ImageCensus) map[string]OmahaImage {
	out := make(map[string]OmahaImage, len(states))
	for id, st := range states {
		out[id] = OmahaImage{ImageStatus: st}
	}
	for id, c := range census {
		img := out[id]
		img.Census = &c
		out[id] = img
	}
	return out
}

// Run serves until ctx ends (nil) or a component stops that cannot go on
// (its error): a listener whose read loop ended (HTTP, TFTP, ProxyDHCP),
// or the source's Run returning. Then /readyz fails naming it for
// FailGrace, and the daemon shuts down as on ctx's end. Errors binding
// the listeners end Run before anything is served.
func (c *Config) Run(ctx context.Context) (err error) {
	if !c.validated {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := c.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	rec := reconcile.New(c.renderOptions(), log, reconcile.NewMetrics(reg))
	// A tree whose secret the access mode would give away is not served,
	// nor, with --secure-boot-cert, one whose kernel does not verify.
	rec.SetCheck(func(snap *render.Snapshot) schema.Diagnostics {
		ds := AccessDiagnostics(c.Access, snap)
		if c.secureBoot != nil {
			ds = append(ds, c.secureBoot.Diagnostics(c.AssetsDir, snap)...)
		}
		return ds
	})
	if c.secureBoot != nil {
		log.Info("secure boot check on: loaders and kernels must be signed for the db", "cert", c.SecureBootCert, "db", c.secureBoot.Subjects())
	}
	acc := httpserver.AccessOptions{Mode: c.Access, TokenTTL: c.AccessTokenTTL}
	var bindings *access.BindingStore
	if c.ProxyDHCP { // routed machines' scripts go to the address of their port-4011 exchange
		bindings = access.NewBindings(0, 0)
		acc.Bindings = bindings
	}
	sup := &supervisor{log: log, failed: make(chan struct{})}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sup.ctx = runCtx

	upd, updaterState, responder := c.omaha(rec, log, reg)
	boots := c.timeline(reg, responder)
	disc := c.discoverer(rec.Snapshot, boots, log)
	var trigger func()
	if len(c.WebhookSecret) > 0 {
		trigger = c.Tree.Trigger
	}
	// The iPXE binaries go over HTTP too (UEFI HTTP boot) once network
	// boot is on.
	httpIPXEDir := ""
	tftpOn := c.TFTPAddr != "" || c.TFTPListener != nil
	if tftpOn {
		httpIPXEDir = c.IPXEDir
	}
	var loaders http.Handler // a nil *bootfiles.Loaders must not become a non-nil handler
	if c.loaders != nil {
		loaders = c.loaders
	}
	certs, err := c.certs(log, reg)
	if err != nil {
		return err
	}
	machines, closeMachines, err := c.openMachines(log)
	if err != nil {
		return err
	}
	defer closeMachines()
	status := func() Status {
		st := Status{Version: c.Version, ServerURL: c.ServerURL, Access: c.Access.String(), Status: rec.Status(), Source: c.Tree.State(),
			Omaha:     OmahaStatus{Updater: updaterState, Error: upd.LastError(), Images: omahaImages(upd.Status(), responder.ImageCensus()), Keyrings: upd.KeyringStatus(), Census: responder.Census()},
			Discovery: disc.Status()}
		if err := sup.err(); err != nil {
			st.Down = err.Error()
		}
		if certs != nil {
			cs := certs.Status()
			st.TLS = &cs
		}
		return st
	}
	handler, adminHandler, err := c.handlers(rec, httpserver.Options{
		ServerURL:     c.ServerURL,
		AssetsDir:     c.AssetsDir,
		IPXEDir:       httpIPXEDir,
		Logger:        log,
		Registry:      reg,
		WebhookSecret: c.WebhookSecret,
		Trigger:       trigger,
		Omaha:         responder,
		OmahaMaxBody:  omaha.MaxBody,
		Ready:         sup.err,
		Access:        acc,
		Loaders:       loaders,
		Timeline:      boots,
		Machines:      machines,
		Status:        func() any { return status() },
		Page:          statusPage(status, boots, machines),
	})
	if err != nil {
		return err
	}

	// Bind everything before serving anything; what was bound is closed
	// again when a later bind fails.
	var closers []func()
	defer func() {
		if err != nil {
			for _, f := range closers {
				f()
			}
		}
	}()
	ln := c.HTTPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.HTTPAddr); err != nil {
			return &FieldError{Field: "HTTPAddr", Value: c.HTTPAddr, Err: fmt.Errorf("%w (another server on that port?)", err)}
		}
		closers = append(closers, func() { ln.Close() })
	}
	log.Info("listening", "component", "http", "addr", ln.Addr().String())
	extra, err := c.bindExtra(handler, adminHandler, certs, log, &closers)
	if err != nil {
		return err
	}
	var tftp *tftpserver.Server
	tl := c.TFTPListener
	if tftpOn {
		if tftp, err = tftpserver.New(c.IPXEDir, log, reg); err != nil {
			return err
		}
		if c.loaders != nil {
			files := &bootfiles.Files{Loaders: c.loaders, Machine: handler}
			if c.AssetsDir != "" {
				if files.Assets, err = safefile.OpenRoot(c.AssetsDir); err != nil {
					return &FieldError{Field: "AssetsDir", Value: c.AssetsDir, Err: err}
				}
				defer files.Assets.Close() // after TFTP's shutdown, below
			}
			tftp.Files = files
			log.Info("GRUB route on: shim, GRUB, their configs and assets over TFTP", "x86_64", c.loaders.Shim(bootfiles.X86_64), "arm64", c.loaders.Shim(bootfiles.ARM64))
		}
		tftp.Timeline = boots
		if tl == nil {
			if tl, err = tftpserver.Listen(c.TFTPAddr); err != nil {
				return err // names --tftp-addr and the fix
			}
			closers = append(closers, func() { closeTFTP(tl) })
		}
		log.Info("listening", "component", "tftp", "addr", tl.LocalAddr().String())
	}
	var dhcp *proxydhcp.Server
	var dhcpConns []dhcpConn
	if c.ProxyDHCP {
		dhcp = proxydhcp.New(proxydhcp.Config{ServerIP: c.serverIP, ServerURL: c.ServerURL, BIOSFile: c.BIOSBinary, EFIFile: c.EFIBinary, ARM64File: c.ARM64Binary,
			ShimFile: c.loaders.Shim(bootfiles.X86_64), ARM64ShimFile: c.loaders.Shim(bootfiles.ARM64), Seen: c.Seen, Timeline: boots,
			Learn: func(mac string, ip netip.Addr) { bindings.Learn(mac, ip, time.Now()) }}, rec, log, reg)
		for _, l := range []dhcpConn{{c.DHCPConn, ":67", proxydhcp.ProxyPort}, {c.BootServerConn, ":4011", proxydhcp.BootServerPort}} {
			if l.conn == nil {
				if l.conn, err = proxydhcp.Listen(c.Interface, l.addr); err != nil {
					return err
				}
				closers = append(closers, func() { l.conn.Close() })
			}
			dhcpConns = append(dhcpConns, l)
			log.Info("listening", "component", l.name(), "interface", c.Interface, "addr", l.conn.LocalAddr().String())
		}
	}
	dhcp6, dhcp6Conns, err := c.bindProxyDHCP6(boots, rec, log, reg, &closers)
	if err != nil {
		return err
	}
	log.Info("pxeops serving", "version", c.Version, "http", ln.Addr().String(), "server_url", c.ServerURL, "access", c.Access.String(), "source", source.Redact(c.Source), "assets", c.AssetsDir)

	srv := httpserver.Server(c.HTTPAddr, handler)
	sup.Go("reconcile", func() error { rec.Run(runCtx); return nil })
	sup.Go("source", func() error { return c.Tree.Run(runCtx, rec.Offer) })
	sup.Go("http", func() error { return srv.Serve(ln) })
	for _, e := range extra {
		sup.Go(e.name, e.serve)
	}
	if tftp != nil {
		sup.Go("tftp", func() error { return tftp.Serve(tl) })
	}
	for _, l := range dhcpConns {
		sup.Go(l.name(), func() error { return dhcp.Serve(l.conn, l.port) })
	}
	for _, l := range dhcp6Conns {
		sup.Go(l.name(), func() error { return dhcp6.Serve(l.conn, l.port) })
	}
	// Like the updater, discovery never stops the daemon: its passes
	// fail into /status. It ends only with runCtx.
	sup.Go("discovery", func() error { disc.Run(runCtx); return nil })
	if c.Updater != nil {
		sup.Go("updater", func() error { c.Updater.Run(runCtx, c.OpenUpdateRepo, c.schedule(rec)); return nil })
	}

	select {
	case <-ctx.Done():
	case <-sup.failed:
		log.Error("a component stopped; shutting down", "err", sup.err(), "after", c.FailGrace)
		select {
		case <-ctx.Done():
		case <-time.After(c.FailGrace):
		}
	}
	stop()
	log.Info("shutting down; waiting for in-flight requests", "timeout", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	shutdownServers(sctx, log, srv, extra)
	if tftp != nil {
		tftp.Shutdown()
	}
	for _, l := range dhcpConns {
		l.conn.Close()
	}
	for _, l := range dhcp6Conns {
		l.conn.Close()
	}
	sup.wg.Wait()
	return sup.err()
}

type dhcpConn struct {
	conn *net.UDPConn
	addr string
	port proxydhcp.Port
}

func (l dhcpConn) name() string { return fmt.Sprintf("proxydhcp:%d", l.port) }

func closeTFTP(l *tftpserver.Listener) {
	l.Reads.Close()
	if l.Writes != nil {
		l.Writes.Close()
	}
}

// omaha makes the Omaha responder and hooks the updater to it: it runs
// when the served tree sets omaha.sync (every interval) or omaha.proxy
// (when hosts report a newer version upstream).
func (c *Config) omaha(rec *reconcile.Reconciler, log *slog.Logger, reg prometheus.Registerer) (*updater.Updater, string, *omaha.Responder) {
	metrics, updaterMetrics := omaha.NewMetrics(reg), updater.NewMetrics(reg)
	policy := func() omaha.Policy {
		if snap := rec.Snapshot(); snap != nil {
			return policyOf(snap.Tree)
		}
		return omaha.Policy{}
	}
	responder := &omaha.Responder{Log: log, Metrics: metrics, Policy: policy}
	reg.MustRegister(responder.ImageHosts())
	if c.Updater == nil {
		log.Info("image updater off", "reason", c.UpdaterOff)
		return &updater.Updater{}, "off: " + c.UpdaterOff, responder
	}
	c.Updater.Metrics = updaterMetrics
	c.Updater.Hosts = responder.VersionHosts // the census is here: rollouts soak on it
	responder.Trigger = c.Updater.Trigger
	return c.Updater, "on", responder
}

// policyOf reads the responder's policy from a validated tree: the
// responder knows the wire, not the model, so the daemon hands it values.
func policyOf(t *schema.Tree) omaha.Policy {
	o := t.Settings.Omaha
	p := omaha.Policy{Proxy: o.Proxy, Passthrough: o.Passthrough, Server: o.Server, Pinned: map[string]string{}}
	for _, id := range t.ImageIDs() {
		img := t.Images[id]
		if img.OS == "flatcar" || img.OS == "coreos" { // the OSes that check in
			p.Sides = append(p.Sides, omaha.Side{Image: id, Name: omaha.SidePinned, Version: img.Version, Arch: img.Arch})
			if r := img.Rollout; r != nil {
				p.Sides = append(p.Sides, omaha.Side{Image: id, Name: omaha.SideRollout, Version: r.Version, Arch: img.Arch, Share: r.Share.String()})
			}
		}
		if img.Update != "omaha" {
			continue
		}
		p.Server = t.Settings.OmahaFor(img.OS).Server
		key := img.Channel + "/" + img.Arch
		if cur, ok := p.Pinned[key]; !ok || omaha.CompareVersions(img.Version, cur) > 0 {
			p.Pinned[key] = img.Version
		}
	}
	return p
}

func (c *Config) schedule(rec *reconcile.Reconciler) func() updater.Schedule {
	return func() updater.Schedule {
		snap := rec.Snapshot()
		if snap == nil {
			return updater.Schedule{}
		}
		o := snap.Tree.Settings.Omaha
		return updater.Schedule{Periodic: o.Sync, OnTrigger: o.Sync || o.Proxy, Interval: time.Duration(o.Interval), Retry: time.Minute}
	}
}

// supervisor runs the components. One that returns while ctx is live has
// stopped for good: the first such is the daemon's failure.
type supervisor struct {
	ctx    context.Context
	log    *slog.Logger
	wg     sync.WaitGroup
	failed chan struct{} // closed at the first failure

	mu      sync.Mutex
	failure error
}

func (s *supervisor) Go(name string, run func() error) {
	s.wg.Go(func() {
		err := run()
		if s.ctx.Err() != nil { // shutting down: listeners were closed, contexts ended
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("while shutting down", "component", name, "err", err)
			}
			return
		}
		if err == nil {
			err = errors.New("its loop ended")
		}
		s.fail(fmt.Errorf("%s stopped: %w", name, err))
	})
}

func (s *supervisor) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure == nil {
		s.failure = err
		close(s.failed)
		return
	}
	s.log.Error("a component stopped", "err", err)
}

// err is the first failure, nil while every component runs.
func (s *supervisor) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// AccessDiagnostics reports, at each group's file, a secret the access
// mode would give away: the reconciler refuses such a tree as invalid,
// and `pxeops check` fails on it.
func AccessDiagnostics(mode access.Mode, snap *render.Snapshot) schema.Diagnostics {
	var ds schema.Diagnostics
	for _, p := range httpserver.CheckAccess(mode, snap, nil) {
		ds = append(ds, schema.Diagnostic{Pos: schema.Pos{File: "groups/" + p.Group + ".yaml"}, Severity: schema.Error, Message: p.Message})
	}
	return ds
}
