package httpserver

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pxeops/pxeops/internal/ratelog"
)

// NewSplit is New with the operators' endpoints (/, /status, /metrics,
// POST /hooks/git) on an admin handler of their own, for a listener
// apart from the boot network: the boot handler answers them 404, so a
// machine on the boot network sees neither the fleet's state nor the
// webhook. /healthz and /readyz are on both: probes and load balancers
// reach the boot port.
func NewSplit(snaps Snapshots, opts Options) (boot, admin http.Handler, err error) {
	return build(snaps, opts, true)
}

// registerAdmin adds the operators' endpoints, the probes and the
// catch-all to mux.
func (s *server) registerAdmin(mux *http.ServeMux) {
	handle := s.register(mux)
	if s.opts.Trigger != nil && len(s.opts.WebhookSecret) > 0 {
		hook := &webhook{secret: s.opts.WebhookSecret, trigger: s.opts.Trigger, log: s.log,
			refused: ratelog.New(s.log, webhookWarnEvery)}
		handle("POST /hooks/git", "hooks", s.withBody(maxHookBody, s.opts.BodyTimeout, hook.ServeHTTP))
	}
	handle("GET /status", "status", s.handleStatus)
	s.registerTimeline(handle)
	if s.opts.Page != nil {
		handle("GET /{$}", "page", s.opts.Page.ServeHTTP)
	}
	s.registerProbes(handle)
	mux.Handle("GET /metrics", noBody(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})))
	s.registerNotFound(handle, "not found: see /status for what this server answers")
}

// registerSplitBoot adds to the boot port, when the admin endpoints are
// apart, the probes and the not found answers: the webhook's too, which
// a POST elsewhere (a body where none is taken) would get as a 400.
func (s *server) registerSplitBoot(handle func(pattern, endpoint string, h http.HandlerFunc)) {
	s.registerProbes(handle)
	s.registerNotFound(handle, "not found")
	handle("POST /hooks/git", "other", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // the body is not read
		http.Error(w, "not found", http.StatusNotFound)
	})
}

func (s *server) registerProbes(handle func(pattern, endpoint string, h http.HandlerFunc)) {
	handle("GET /healthz", "healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	handle("GET /readyz", "readyz", s.handleReadyz)
}

func (s *server) registerNotFound(handle func(pattern, endpoint string, h http.HandlerFunc), msg string) {
	handle("/", "other", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, msg, http.StatusNotFound)
	})
}
