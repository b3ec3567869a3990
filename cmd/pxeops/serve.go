package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/reconcile"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/httpserver"
	"github.com/pxeops/pxeops/serve/proxydhcp"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("serve", "serve --source DIR [flags]\n\nServes the config repository at DIR to booting machines, reloading it on every change.", stderr)
	src := fset.String("source", "", "config repository: a directory, or a git URL (required)")
	poll := fset.Duration("poll", 30*time.Second, "how often to check the source: full rescan of a directory, ls-remote of a git remote (jittered)")
	watch := fset.Bool("watch", true, "watch a directory source with fsnotify; the periodic rescan runs either way")
	var g gitFlags
	g.register(fset)
	httpAddr := fset.String("http-addr", ":8080", "HTTP listen address")
	serverURL := fset.String("server-url", "", "URL machines reach this server at (default: http://<first non-loopback address><http-addr port>)")
	assetsDir := fset.String("assets-dir", "", "directory served at /assets/ (kernels, initrds)")
	tftpAddr := fset.String("tftp-addr", "", "TFTP listen address for the iPXE binaries, e.g. :69; off when empty (:69 with --proxy-dhcp)")
	proxyDHCP := fset.Bool("proxy-dhcp", false, "answer PXE clients as a ProxyDHCP server (ports 67 and 4011) on --interface; needs root or CAP_NET_BIND_SERVICE+CAP_NET_RAW")
	iface := fset.String("interface", "", "with --proxy-dhcp: the network interface machines boot on")
	biosFile := fset.String("bios-binary", "undionly.kpxe", "with --proxy-dhcp: iPXE for BIOS clients, in --ipxe-dir")
	efiFile := fset.String("efi-binary", "snponly.efi", "with --proxy-dhcp: iPXE for x86-64 UEFI clients, in --ipxe-dir (ipxe.efi works too if it is a file there)")
	arm64File := fset.String("arm64-binary", "", "with --proxy-dhcp: iPXE for arm64 UEFI clients, in --ipxe-dir; empty: arm64 clients are not answered")
	ipxeDir := fset.String("ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries served over TFTP (Debian package ipxe)")
	shutdown := fset.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long in-flight requests (downloads) may finish")
	level := &choice{value: "info", allowed: []string{"debug", "info", "warn", "error"}}
	fset.Var(level, "log-level", "debug, info, warn or error")
	format := &choice{value: "text", allowed: []string{"text", "json"}}
	fset.Var(format, "log-format", "text or json")
	var u updaterFlags
	u.register(fset, "omaha-", true)
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	u.assetsDir = *assetsDir
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pxeops serve: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case fset.NArg() > 0:
		return usage("unexpected argument %q; the tree is given with --source", fset.Arg(0))
	case *src == "":
		return usage("--source is required: a directory or a git URL (try --source examples/quickstart)")
	}
	var proxyIP net.IP
	if *proxyDHCP {
		if *iface == "" {
			return usage("--proxy-dhcp needs --interface: the interface machines boot on")
		}
		ip, err := proxydhcp.InterfaceIP(*iface)
		if err != nil {
			return usage("%v", err)
		}
		proxyIP = ip
		if *tftpAddr == "" {
			*tftpAddr = ":69"
		}
		if *serverURL == "" {
			_, port, _ := net.SplitHostPort(*httpAddr)
			*serverURL = "http://" + net.JoinHostPort(ip.String(), port)
		}
	}
	if *serverURL == "" {
		*serverURL = defaultServerURL(*httpAddr)
	}

	logOut := newBufferedLog(stderr)
	defer logOut.Close()
	log := newLogger(logOut, level.value, format.value)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := reconcile.New(render.Options{ServerURL: *serverURL}, log, reconcile.NewMetrics(reg))
	var tree treeSource
	var trigger func()
	if source.IsGitURL(*src) {
		repo, err := g.source(*src, *poll, log)
		if err != nil {
			return usage("%v", err)
		}
		tree, trigger = repo, repo.Trigger
	} else {
		dir, err := source.NewDir(*src, source.DirOptions{Poll: *poll, Watch: *watch, Logger: log})
		if err != nil {
			return usage("--source: %v", err)
		}
		defer dir.Close()
		tree = dir
	}
	defer reloadOnHangup(log, tree.Trigger)()
	updater, updaterState, responder := serveOmaha(ctx, &u, &g, *src, rec, log, reg)
	hookSecret, err := g.webhookSecret(trigger != nil)
	if err != nil {
		return usage("%v", err)
	}
	// The iPXE binaries go over HTTP too (UEFI HTTP boot) once network
	// boot is on.
	httpIPXEDir := ""
	if *proxyDHCP || *tftpAddr != "" {
		httpIPXEDir = *ipxeDir
	}
	handler, err := httpserver.New(rec, httpserver.Options{
		ServerURL:     *serverURL,
		AssetsDir:     *assetsDir,
		IPXEDir:       httpIPXEDir,
		Logger:        log,
		Registry:      reg,
		WebhookSecret: hookSecret,
		Trigger:       trigger,
		Omaha:         responder,
		Status: func() any {
			return serveStatus{Version: version, ServerURL: *serverURL, Status: rec.Status(), Source: tree.State(),
				Omaha: omahaStatus{Updater: updaterState, Error: updater.LastError(), Images: updater.Status(), Census: responder.Census()}}
		},
	})
	if err != nil {
		return usage("%v", err)
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops serve: --http-addr %s: %v (another server on that port? choose another with --http-addr)\n", *httpAddr, err)
		return exitInvalid
	}
	srv := httpserver.Server(*httpAddr, handler)
	if *tftpAddr != "" {
		tftp, err := tftpserver.New(*ipxeDir, log, reg)
		if err != nil {
			return usage("%v", err)
		}
		if *proxyDHCP {
			binaries := []string{*biosFile, *efiFile}
			if *arm64File != "" {
				binaries = append(binaries, *arm64File)
			}
			if err := tftp.Check(binaries...); err != nil {
				return usage("%v", err)
			}
		}
		conn, err := tftpserver.Listen(*tftpAddr)
		if err != nil {
			fmt.Fprintf(stderr, "pxeops serve: %v\n", err)
			return exitInvalid
		}
		go tftp.Serve(conn)
		defer tftp.Shutdown()
	}

	if *proxyDHCP {
		dhcp := proxydhcp.New(proxydhcp.Config{ServerIP: proxyIP, ServerURL: *serverURL, BIOSFile: *biosFile, EFIFile: *efiFile, ARM64File: *arm64File}, rec, log, reg)
		for _, l := range []struct {
			addr string
			port proxydhcp.Port
		}{{":67", proxydhcp.ProxyPort}, {":4011", proxydhcp.BootServerPort}} {
			conn, err := proxydhcp.Listen(*iface, l.addr)
			if err != nil {
				fmt.Fprintf(stderr, "pxeops serve: %v\n", err)
				return exitInvalid
			}
			defer conn.Close()
			go dhcp.Serve(conn, l.port)
		}
	}
	log.Info("pxeops serving", "version", version, "http", ln.Addr().String(), "server_url", *serverURL, "source", source.Redact(*src), "assets", *assetsDir)
	go rec.Run(ctx)
	go tree.Run(ctx, rec.Offer)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		log.Error("HTTP server stopped", "err", err)
		return exitInvalid
	case <-ctx.Done():
	}
	log.Info("shutting down; waiting for in-flight requests", "timeout", *shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests cut off at the shutdown timeout", "err", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("HTTP server", "err", err)
	}
	return exitOK
}

// treeSource is where revisions come from: a directory or a git remote.
type treeSource interface {
	Run(ctx context.Context, emit func(source.Revision)) error
	State() source.State
	Trigger() // check now: rescan the directory, ask the remote
}

// serveStatus is the /status document.
type serveStatus struct {
	Version   string `json:"version"`
	ServerURL string `json:"server_url"`
	reconcile.Status
	Source source.State `json:"source"`
	Omaha  omahaStatus  `json:"omaha"`
}

type omahaStatus struct {
	// Updater is "on", or "off: <why>".
	Updater string                       `json:"updater"`
	Error   string                       `json:"error,omitempty"`
	Images  map[string]omaha.ImageStatus `json:"images"`
	Census  omaha.Census                 `json:"census"`
}

// serveOmaha makes the Omaha responder and, with --assets-dir, starts the
// updater: it runs when the served tree sets omaha.sync (every interval)
// or omaha.proxy (when hosts report a newer version upstream).
func serveOmaha(ctx context.Context, u *updaterFlags, g *gitFlags, src string, rec *reconcile.Reconciler, log *slog.Logger, reg *prometheus.Registry) (*omaha.Updater, string, *omaha.Responder) {
	metrics := omaha.NewMetrics(reg)
	policy := func() omaha.Policy {
		if snap := rec.Snapshot(); snap != nil {
			return omaha.PolicyOf(snap.Tree)
		}
		return omaha.Policy{}
	}
	responder := &omaha.Responder{Log: log, Metrics: metrics, Policy: policy}
	updater, err := u.updater(log, nil)
	if err != nil {
		log.Info("image updater off", "reason", err)
		return &omaha.Updater{}, "off: " + err.Error(), responder
	}
	updater.Metrics = metrics
	responder.Trigger = updater.Trigger
	ref := g.ref
	if !source.IsGitURL(src) {
		ref = "HEAD" // a directory source serves its work tree; updates start from its HEAD
	}
	open := func(ctx context.Context) (*omaha.Repo, error) {
		opts := *g
		opts.ref = ref
		return opts.openUpdateRepo(ctx, src)
	}
	schedule := func() omaha.Schedule {
		snap := rec.Snapshot()
		if snap == nil {
			return omaha.Schedule{}
		}
		o := snap.Tree.Settings.Omaha
		return omaha.Schedule{Periodic: o.Sync, OnTrigger: o.Sync || o.Proxy, Interval: time.Duration(o.Interval), Retry: time.Minute}
	}
	go updater.Run(ctx, open, schedule)
	return updater, "on", responder
}

// defaultServerURL guesses the URL machines on the network can reach:
// the host of --http-addr when it names one, else this host's first
// non-loopback IPv4 address.
func defaultServerURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() && ip.IP.IsGlobalUnicast() {
					host = ip.IP.String()
					break
				}
			}
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
