package httpserver

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/ratelog"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/serve/neighbour"
)

// AccessOptions say who gets a machine's boot answers; package access
// decides, this file feeds it and acts on its answer.
type AccessOptions struct {
	Mode access.Mode
	// Neighbours is the neighbour table; nil: the kernel's.
	Neighbours access.Neighbours
	// Bindings are the port-4011 exchanges ProxyDHCP saw; nil: none, so
	// a routed machine's script is refused.
	Bindings access.Bindings
	// TokenTTL is how long a script's token lasts; 0: access.DefaultTokenTTL.
	TokenTTL time.Duration
	// Secret reports whether a profile's answers use a secret; nil:
	// render.Profile.UsesSecrets ({{ secret "name" }} in its config;
	// kernel arguments cannot read secrets).
	Secret func(*render.Profile) bool
}

// accessWarnEvery spaces the warnings of refused requests: anyone on the
// network can cause them.
const accessWarnEvery = 10 * time.Second

// CheckAccess lists the groups of snap whose secret mode would give away
// (access.CheckTree). The daemon refuses such a tree as it refuses an
// invalid one: the last good one keeps serving.
func CheckAccess(mode access.Mode, snap *render.Snapshot, secret func(*render.Profile) bool) []access.Problem {
	if secret == nil {
		secret = (*render.Profile).UsesSecrets
	}
	var groups []access.Group
	for _, g := range snap.Groups() {
		groups = append(groups, access.Group{ID: g.ID, ByMAC: g.SelectsMAC(), Secret: secret(g.Profile)})
	}
	return access.CheckTree(mode, groups)
}

type accessHook struct {
	mode     access.Mode
	neigh    access.Neighbours
	bindings access.Bindings
	tokens   *access.Tokens
	secret   func(*render.Profile) bool
	counts   []prometheus.Counter // by access.Reason
	refused  *ratelog.Logger
}

func newAccessHook(o AccessOptions, log *slog.Logger, reg prometheus.Registerer) (*accessHook, error) {
	a := &accessHook{mode: o.Mode, neigh: o.Neighbours, bindings: o.Bindings, secret: o.Secret,
		refused: ratelog.New(log, accessWarnEvery)}
	if a.neigh == nil {
		a.neigh = neighbour.New()
	}
	if a.secret == nil {
		a.secret = (*render.Profile).UsesSecrets
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = access.DefaultTokenTTL
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	var err error
	if a.tokens, err = access.NewTokens(key, o.TokenTTL); err != nil {
		return nil, err
	}
	// A bounded label set: the reasons are a fixed list.
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pxeops_access_decisions_total", Help: "Boot answers served or refused by the access rule, by result and reason.",
	}, []string{"result", "reason"})
	reg.MustRegister(vec)
	for _, r := range access.Reasons() {
		result := "refused"
		if r.Allowed() {
			result = "served"
		}
		a.counts = append(a.counts, vec.WithLabelValues(result, r.String()))
	}
	return a, nil
}

// check decides whether the answer of group g to machine m goes to r's
// sender. It returns the token a checked script carries, or a 403.
func (a *accessHook) check(w http.ResponseWriter, r *http.Request, endpoint string, m *render.Machine, snap *render.Snapshot, g *render.Group) (string, error) {
	req := access.Request{Kind: access.Config, MAC: m.MAC, Revision: snap.Revision}
	if endpoint == "ipxe" || endpoint == "pixiecore" || endpoint == "grub" {
		req.Kind = access.Script
	}
	// Cheap cases first: no address parsing, no clock, no token.
	if a.mode == access.Auto {
		req.Protected = a.secret(g.Profile)
	}
	if a.mode != access.Open && (a.mode == access.Machine || req.Protected) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			req.Remote = ap.Addr().Unmap()
		}
		req.Token, _, _ = access.SplitToken(r.URL.RawQuery) // machineFromQuery refused a bad one
		req.Now = time.Now()
	}
	d := access.Decide(a.mode, req, a.neigh, a.bindings, a.tokens)
	a.counts[d.Reason].Inc()
	if !d.Allowed() {
		// Never the token: it is a credential, if a stale one.
		a.refused.Warn(d.Reason.String(), "access: refused", "endpoint", endpoint, "mac", m.MAC, "remote", r.RemoteAddr,
			"reason", d.Reason.String(), "revision", snap.Revision)
		return "", &httpError{http.StatusForbidden, "refused (" + d.Reason.String() + "): " + d.Reason.Explain()}
	}
	if d.Reason != access.AllowOpen && d.Reason != access.AllowNoSecret {
		// An answer only this machine may have: no cache keeps it for another.
		w.Header().Set("Cache-Control", "no-store")
	}
	if !d.IssueToken {
		return "", nil
	}
	return a.tokens.Issue(m.MAC, req.Remote, snap.Revision, req.Now), nil
}

// writeScript writes m's script, with token (when there is one) added to
// its config URLs (check marked such an answer no-store).
func writeScript(w http.ResponseWriter, snap *render.Snapshot, g *render.Group, m *render.Machine, token string) error {
	if token == "" {
		return snap.WriteScript(w, g, m)
	}
	var buf bytes.Buffer
	if err := snap.WriteScript(&buf, g, m); err != nil {
		return err
	}
	_, err := w.Write(addToken(buf.Bytes(), token, snap))
	return err
}

// tokenEdit is the edit that adds token to an answer's config URLs, nil
// when there is no token.
func tokenEdit(token string, snap *render.Snapshot) func(string) string {
	if token == "" {
		return nil
	}
	return func(c string) string { return string(addToken([]byte(c), token, snap)) }
}

// addToken adds token to every URL of b that points at this server's
// config endpoints, over HTTP or HTTPS.
func addToken(b []byte, token string, snap *render.Snapshot) []byte {
	if snap.ConfigServerURL == snap.ServerURL {
		return access.AddToken(b, token, snap.ServerURL)
	}
	return access.AddToken(b, token, snap.ServerURL, snap.ConfigServerURL)
}
