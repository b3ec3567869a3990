// Package httpserver is pxeops' HTTP boot server: iPXE scripts, configs,
// the Pixiecore API, assets, status and metrics. Every request reads the
// current snapshot through one pointer load and uses it throughout.
package httpserver

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/access"
)

// Snapshots gives the snapshot to serve; nil until the first one.
type Snapshots interface {
	Snapshot() *render.Snapshot
}

// Options configure the handler.
type Options struct {
	// ServerURL is where machines reach this server; /boot.ipxe chains to it.
	ServerURL string
	// AssetsDir is served at /assets/; empty serves nothing there.
	AssetsDir string
	// IPXEDir is served at /ipxe-bin/, for UEFI HTTP boot; empty serves
	// nothing there.
	IPXEDir string
	// Status builds the /status document.
	Status func() any
	// Page serves the HTML status page at GET / beside /status (package
	// statuspage); nil: / answers 404.
	Page http.Handler
	// Ready, when set, is asked by /readyz before the snapshot: an error
	// (a component that stopped, named) makes it answer 503 with it.
	Ready  func() error
	Logger *slog.Logger
	// Registry collects the metrics served at /metrics.
	Registry *prometheus.Registry
	// WebhookSecret and Trigger enable POST /hooks/git, which checks the
	// request against the secret and calls Trigger.
	WebhookSecret []byte
	Trigger       func()
	// Omaha answers update_engine at POST /v1/update/; nil: not served.
	// OmahaMaxBody caps its request bodies (omaha.MaxBody; handed in so
	// the HTTP server does not import the updater and its git stack).
	Omaha        http.Handler
	OmahaMaxBody int64
	// BodyTimeout bounds reading a request body whole (POST /v1/update/,
	// /hooks/git); 0: 10s.
	BodyTimeout time.Duration
	// MaxBodiesPerClient and MaxBodies bound the request bodies being
	// read at once from one address and in all; past them a request is
	// refused at once (429, 503). 0: 16 and 256.
	MaxBodiesPerClient, MaxBodies int
	// Access says who gets a machine's script and config (access.go).
	Access AccessOptions
	// Loaders serves shim and GRUB at LoaderPath for UEFI HTTP boot;
	// nil: not served.
	Loaders http.Handler
	// Timeline records boot answers and downloads and serves
	// /v1/machines and /v1/discovered (timeline.go); nil: off.
	Timeline Timeline
	// Machines is the durable machine state (machinestate.go); nil: none
	// kept, no machine is installed.
	Machines MachineStates
}

// LoaderPath is where shim and GRUB are served over HTTP. Paths under it
// reach Loaders uncleaned: shim asks for GRUB as LoaderPath+"/grubx64.efi"
// and gives up at the redirect ServeMux answers a double slash with.
const LoaderPath = "/loader/"

// IPXEBinPath is where the iPXE binaries are served, for UEFI HTTP boot.
const IPXEBinPath = "/ipxe-bin/"

// RevisionHeader carries the snapshot revision on every boot answer.
const RevisionHeader = "X-Pxeops-Revision"

type server struct {
	snaps    Snapshots
	opts     Options
	log      *slog.Logger
	metrics  *httpMetrics
	bodies   *bodyGate
	access   *accessHook
	bootIPXE []byte
}

// New returns the handler for every endpoint. It fails when the assets
// directory cannot be opened.
func New(snaps Snapshots, opts Options) (http.Handler, error) {
	h, _, err := build(snaps, opts, false)
	return h, err
}

// build makes the boot handler and, with split, the admin handler apart
// from it (NewSplit); without, the boot handler serves both.
func build(snaps Snapshots, opts Options, split bool) (boot, admin http.Handler, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	opts.BodyTimeout = cmp.Or(opts.BodyTimeout, defaultBodyTimeout)
	s := &server{snaps: snaps, opts: opts, log: opts.Logger, metrics: newHTTPMetrics(opts.Registry)}
	s.bodies = &bodyGate{
		perClient: cmp.Or(opts.MaxBodiesPerClient, defaultMaxBodiesPerClient),
		max:       cmp.Or(opts.MaxBodies, defaultMaxBodies),
		reading:   s.metrics.bodies,
		clients:   map[string]int{},
	}
	s.bootIPXE = bootScript(strings.TrimSuffix(opts.ServerURL, "/"))
	if s.access, err = newAccessHook(opts.Access, opts.Logger, opts.Registry); err != nil {
		return nil, nil, err
	}

	mux := http.NewServeMux()
	handle := s.register(mux)
	handle("GET /boot.ipxe", "boot.ipxe", s.handleBootIPXE)
	handle("GET /ipxe", "ipxe", s.handleIPXE)
	handle("GET /grub", "grub", s.handleGRUB)
	for _, c := range []struct{ path, typ string }{
		{"/config", ""}, {"/ignition", render.ConfigIgnition}, {"/cloud", render.ConfigCloudConfig}, {"/generic", render.ConfigRaw},
	} {
		handle("GET "+c.path, strings.TrimPrefix(c.path, "/"), s.configHandler(c.typ))
	}
	handle("GET /metadata", "metadata", s.handleMetadata)
	handle("GET /pixiecore/v1/boot/{mac}", "pixiecore", s.handlePixiecore)
	assets, err := newAssets(opts.AssetsDir, "/assets/", "--assets-dir")
	if err != nil {
		return nil, nil, err
	}
	serveAssets := assets.ServeHTTP
	if opts.Timeline != nil {
		serveAssets = s.recordAssets(serveAssets)
	}
	handle("GET /assets/", "assets", serveAssets)
	ipxeBin, err := newAssets(opts.IPXEDir, IPXEBinPath, "--ipxe-dir")
	if err != nil {
		return nil, nil, err
	}
	handle("GET "+IPXEBinPath, "ipxe-bin", ipxeBin.ServeHTTP)
	adminMux := mux
	if split {
		adminMux = http.NewServeMux()
		s.registerSplitBoot(handle)
	}
	s.registerAdmin(adminMux)
	s.registerMachineState(handle, s.register(adminMux), split)
	if opts.Omaha != nil {
		update := s.withBody(cmp.Or(opts.OmahaMaxBody, defaultOmahaMaxBody), opts.BodyTimeout, opts.Omaha.ServeHTTP)
		handle("POST /v1/update/", "omaha", update)
		handle("POST /v1/update", "omaha", update)
	}
	var bootMux http.Handler = mux
	if opts.Loaders != nil {
		loaders := s.metrics.instrument("loader", noBody(opts.Loaders))
		bootMux = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, LoaderPath) {
				loaders.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	boot = bodyDeadline(opts.BodyTimeout, bootMux)
	if split {
		return boot, bodyDeadline(opts.BodyTimeout, adminMux), nil
	}
	return boot, nil, nil
}

// register returns the function that adds an endpoint to mux, counted
// and timed under its name. Endpoints read no body unless registered
// through withBody, which states each one's size limit and deadline.
func (s *server) register(mux *http.ServeMux) func(pattern, endpoint string, h http.HandlerFunc) {
	return func(pattern, endpoint string, h http.HandlerFunc) {
		var hh http.Handler = h
		if !strings.HasPrefix(pattern, "POST ") {
			hh = noBody(h)
		}
		mux.Handle(pattern, s.metrics.instrument(endpoint, hh))
	}
}

// bootScript is what iPXE first fetches. It makes sure iPXE has its
// network settings (re-running dhcp until it has an address: with a
// separate DHCP server, iPXE may act on an offer before the proxy's),
// then chains to /ipxe with every identifier iPXE knows, URI-encoded by
// iPXE itself so none can break the query.
//
// Behind an IPv6 literal server URL the address to wait for is an IPv6
// one (${ip6}); only then, as iPXE may hold a link-local ${ip6} long
// before DHCPv4 gives it an ${ip}.
func bootScript(serverURL string) []byte {
	addr := "${ip}"
	if u, err := url.Parse(serverURL); err == nil && strings.Contains(u.Hostname(), ":") {
		addr = "${ip6}"
	}
	return []byte("#!ipxe\n" +
		":settings\n" +
		"isset " + addr + " || goto retry_dhcp\n" +
		"chain --autofree " + serverURL + "/ipxe?mac=${mac:hexhyp}&uuid=${uuid:uristring}&hostname=${hostname:uristring}&serial=${serial:uristring}&arch=${buildarch:uristring} || goto failed\n" +
		"exit\n" +
		":retry_dhcp\n" +
		"dhcp || sleep 1\n" +
		"goto settings\n" +
		":failed\n" +
		"echo pxeops: no boot script for this machine (see the server's log and /status); booting from the next device\n" +
		"sleep 5\n" +
		"exit 1\n")
}

func (s *server) handleBootIPXE(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(s.bootIPXE)
	if s.opts.Timeline != nil {
		s.opts.Timeline.BootIPXE(remoteIP(r))
	}
}

// httpError is an answer other than 200, with the reason a person reads.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// match finds the group of a boot request in snap.
func match(snap *render.Snapshot, m *render.Machine) (*render.Group, error) {
	if snap == nil {
		return nil, &httpError{http.StatusServiceUnavailable, "no valid config served yet; see /status"}
	}
	g := snap.Lookup(m)
	if g == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("no group matches %s and there is no default group (revision %s)", m, snap.Revision)}
	}
	return g, nil
}

// machineFromQuery reads the machine of a boot request. A query that
// does not parse whole is refused: the part that did parse could match
// the default group, whose profile may install over a disk.
func machineFromQuery(r *http.Request) (render.Machine, error) {
	_, raw, err := access.SplitToken(r.URL.RawQuery) // the token is the access rule's, not a label
	var m render.Machine
	if err == nil {
		m, err = render.ParseMachineQuery(raw)
	}
	if err != nil {
		return m, &httpError{http.StatusBadRequest, "bad query: " + err.Error()}
	}
	return m, nil
}

// boot serves a boot answer: it resolves the machine, writes the body with
// render, and logs the request once.
func (s *server) boot(w http.ResponseWriter, r *http.Request, endpoint string, m render.Machine, mErr error, write func(snap *render.Snapshot, g *render.Group, token string) error) {
	snap := s.snaps.Snapshot() // one load: the whole answer comes from this revision
	if snap != nil {
		w.Header().Set(RevisionHeader, snap.Revision)
	}
	var g *render.Group
	var token string
	err := mErr
	unmatched := false // a snapshot is served and no group matches
	if err == nil {
		s.withState(&m) // before the lookup: groups may select the state
		g, err = match(snap, &m)
		unmatched = err != nil && snap != nil
	}
	if err == nil {
		token, err = s.access.check(w, r, endpoint, &m, snap, g)
	}
	if err == nil {
		err = write(snap, g, token)
	}
	var he *httpError
	switch {
	case err == nil:
		s.logBoot(r, slog.LevelInfo, "boot", endpoint, &m, snap, g)
		if s.opts.Timeline != nil {
			s.opts.Timeline.Boot(m.MAC, remoteIP(r), endpoint, snap, g)
		}
	case errors.As(err, &he):
		http.Error(w, he.msg, he.code)
		if unmatched && s.opts.Timeline != nil && (endpoint == "ipxe" || endpoint == "grub") {
			s.noteUnmatched(&m)
		}
		level := slog.LevelInfo
		switch he.code {
		case http.StatusNotFound:
			level = slog.LevelDebug // an unmatched machine may be another server's
		case http.StatusForbidden:
			level = slog.LevelDebug // the access rule logs refusals, rate-limited
		}
		s.logBoot(r, level, "boot: not served", endpoint, &m, snap, g, slog.Int("status", he.code), slog.String("reason", he.msg))
	default:
		http.Error(w, "rendering failed: "+err.Error(), http.StatusInternalServerError)
		s.logBoot(r, slog.LevelError, "boot: rendering failed", endpoint, &m, snap, g, slog.Any("err", err))
	}
}

// logBoot logs a boot request once. It builds the record only when the
// level is on, with typed attributes: at thousands of requests a second,
// logging is a good part of a request's cost.
func (s *server) logBoot(r *http.Request, level slog.Level, msg, endpoint string, m *render.Machine, snap *render.Snapshot, g *render.Group, extra ...slog.Attr) {
	ctx := r.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs, slog.String("endpoint", endpoint), slog.String("machine", m.String()), slog.String("remote", r.RemoteAddr))
	if snap != nil {
		attrs = append(attrs, slog.String("revision", snap.Revision))
	}
	if g != nil {
		attrs = append(attrs, slog.String("group", g.ID), slog.String("profile", g.Profile.ID))
	}
	s.log.LogAttrs(ctx, level, msg, append(attrs, extra...)...)
}

func (s *server) handleIPXE(w http.ResponseWriter, r *http.Request) {
	m, err := machineFromQuery(r)
	s.boot(w, r, "ipxe", m, err, func(snap *render.Snapshot, g *render.Group, token string) error {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return writeScript(w, snap, g, &m, token)
	})
}

// handleGRUB serves the machine's GRUB config (matchbox's /grub, with
// its query): what GRUB runs on the shim route, where it comes over TFTP
// through this same handler (package bootfiles).
func (s *server) handleGRUB(w http.ResponseWriter, r *http.Request) {
	m, err := machineFromQuery(r)
	s.boot(w, r, "grub", m, err, func(snap *render.Snapshot, g *render.Group, token string) error {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return snap.WriteGRUB(w, g, &m, tokenEdit(token, snap))
	})
}

// configHandler serves the machine's config; typ, when set, is the only
// config type the endpoint serves (the matchbox aliases).
func (s *server) configHandler(typ string) http.HandlerFunc {
	endpoint := "config"
	if typ != "" {
		endpoint = typ
	}
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := machineFromQuery(r)
		s.boot(w, r, endpoint, m, err, func(snap *render.Snapshot, g *render.Group, _ string) error {
			have := g.Profile.Source.ConfigType()
			switch {
			case have == "":
				return &httpError{http.StatusNotFound, fmt.Sprintf("profile %s has no config", g.Profile.ID)}
			case typ != "" && have != typ && !(typ == render.ConfigIgnition && have == render.ConfigButane):
				return &httpError{http.StatusNotFound, fmt.Sprintf("profile %s serves %s, not %s; fetch /config", g.Profile.ID, have, typ)}
			}
			ctype := "text/plain; charset=utf-8"
			if have == render.ConfigIgnition || have == render.ConfigButane {
				ctype = "application/json"
			}
			w.Header().Set("Content-Type", ctype)
			return snap.WriteConfig(w, g, &m)
		})
	}
}

func (s *server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	m, err := machineFromQuery(r)
	s.boot(w, r, "metadata", m, err, func(snap *render.Snapshot, g *render.Group, _ string) error {
		// matchbox's own header reads "plain/text", which is no media
		// type; text/plain is what its clients (shell, curl) accept.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, raw, _ := access.SplitToken(r.URL.RawQuery) // parsed already; never echo the token
		return snap.WriteMetadata(w, g, &m, raw)
	})
}

func (s *server) handlePixiecore(w http.ResponseWriter, r *http.Request) {
	var m render.Machine
	mac, err := render.ParseMAC(r.PathValue("mac"))
	if err != nil {
		err = &httpError{http.StatusBadRequest, "bad MAC in path: " + err.Error()}
	}
	m.MAC = mac
	s.boot(w, r, "pixiecore", m, err, func(snap *render.Snapshot, g *render.Group, token string) error {
		if g.Profile.Local() { // no kernel: Pixiecore leaves the machine to its next boot entry
			return &httpError{http.StatusNotFound, fmt.Sprintf("profile %s boots the local disk", g.Profile.ID)}
		}
		w.Header().Set("Content-Type", "application/json")
		return snap.WritePixiecore(w, g, &m, tokenEdit(token, snap))
	})
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var doc any = map[string]any{}
	if s.opts.Status != nil {
		doc = s.opts.Status()
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(doc)
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	snap := s.snaps.Snapshot()
	if snap == nil {
		http.Error(w, "not ready: no valid config served yet; see /status", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set(RevisionHeader, snap.Revision)
	fmt.Fprintln(w, "ok", snap.Revision)
}

// Server wraps the handler in an http.Server with bounds on slow and
// oversized requests. There is no ReadTimeout: it is one read deadline
// from the request's first byte that stays set while the handler runs,
// so net/http's background read during a long download would hit it and
// cancel the request's context; the handler bounds each endpoint's body
// instead (Options.BodyTimeout). There is no WriteTimeout either: it cuts a response at a fixed time whatever
// its progress, and an initrd of 500 MB to a machine on a slow or busy
// link takes minutes; a client that stops reading is left to TCP (its
// window closes, the kernel's retransmission timeout ends the connection).
func Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}
