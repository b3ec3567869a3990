package imports

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pxeops/pxeops/"

// helpers are the leaf packages anything may use: they know nothing of
// the model or the servers.
var helpers = []string{"internal/safefile", "internal/ratelog", "internal/udpserve"}

// rule says which packages of the module a package (or, with a trailing
// "/...", a subtree) may import, and which outside modules it must not
// depend on even indirectly. Code (not tests) is checked: a test may
// reach for whatever fixture it needs.
type rule struct {
	pkg    string
	allow  []string
	banned []string // import path prefixes, checked against every dependency
	why    string
}

// heavy are the modules the request path must not drag along: git and
// file watching belong to source and the updater.
var heavy = []string{"github.com/go-git/", "github.com/fsnotify/", "github.com/ProtonMail/"}

var rules = []rule{
	{pkg: "schema", allow: helpers, banned: heavy,
		why: "schema is the centre: it imports no other package of pxeops"},
	{pkg: "render", allow: append([]string{"schema"}, helpers...), banned: heavy,
		why: "render builds snapshots from schema's trees and nothing else"},
	{pkg: "source", allow: append([]string{"schema"}, helpers...),
		why: "source knows where trees come from, nothing of rendering or serving"},
	{pkg: "source/static", allow: []string{"source", "schema"},
		why: "pxeops boot's fixed tree: a source's revision and nothing else of pxeops"},
	{pkg: "source/propose", allow: []string{"source"},
		why: "commits on a branch of their own, through source's clone: the one git layer's write side"},
	{pkg: "source/pixiecoreapi", allow: []string{"source", "source/static"},
		why: "Pixiecore's API as a source: its answers become a tree, served like any other"},
	{pkg: "reconcile", allow: append([]string{"source", "render", "schema"}, helpers...),
		why: "reconcile turns source revisions into render snapshots"},
	{pkg: "serve/machinestate", allow: helpers, banned: heavy,
		why: "the durable machine state: a bbolt file, nothing of the model or the servers"},
	{pkg: "serve/...", allow: append([]string{"render", "serve/access", "serve/neighbour", "serve/machinestate", "serve/tftpserver/pintftp/...", "serve/timeline"}, helpers...), banned: heavy,
		why: "the servers see the model only through render"},
	{pkg: "serve/proxydhcp6", allow: append([]string{"render", "serve/timeline"}, helpers...), banned: heavy,
		why: "ProxyDHCPv6 sees the model through render and tells the timeline; the IPv4 proxy is a sibling, not a library"},
	{pkg: "serve/timeline", allow: append([]string{"render"}, helpers...), banned: heavy,
		why: "the boot timeline is told by the servers and knows none of them"},
	{pkg: "omaha", allow: helpers, banned: heavy,
		why: "the wire protocol, client and responder: no git, no store"},
	{pkg: "omaha/updater", allow: append([]string{"omaha", "source", "source/propose", "schema"}, helpers...),
		why: "the store and the updater: git through source's layer, validity through schema"},
	{pkg: "reconcile/discover", allow: append([]string{"schema", "render", "source/propose"}, helpers...),
		why: "discovery: the tree through render (does a group match this machine?), the branch through source/propose"},
	{pkg: "internal/daemon", allow: []string{"reconcile/discover", "source", "reconcile", "render", "schema", "serve/...", "omaha/...", "source/propose", "internal/secureboot", "internal/safefile", "internal/ratelog"},
		why: "the one place that wires everything"},
	// serve/access only for its mode names: the --access flag's values;
	// serve/timeline for the JSON `pxeops machines` reads.
	{pkg: "cmd/pxeops", allow: append([]string{"internal/daemon", "reconcile/discover", "source", "source/static", "source/pixiecoreapi", "source/propose", "render", "schema", "omaha/...", "serve/access", "serve/timeline", "internal/matchbox"}, helpers...),
		why: "the command is flags and wiring through the daemon: servers and the reconciler are the daemon's"},

	{pkg: "internal/matchbox", allow: append([]string{"schema"}, helpers...), banned: heavy,
		why: "the matchbox converter: files in, files and a report out; schema only for its config type names"},

	{pkg: "internal/secureboot", allow: helpers, banned: heavy,
		why: "Authenticode checks of files against certificates: no model, no servers"},

	// Tools for tests and benchmarks.
	{pkg: "internal/omahatest", allow: []string{"omaha/...", "internal/gittest"}},
	{pkg: "internal/loadtest/...", allow: []string{"internal/gentree", "serve/tftpserver/pintftp"}},
	{pkg: "internal/gentree/...", allow: []string{"internal/gentree"}},
	{pkg: "internal/e2e", allow: []string{"internal/podmantest"}},
	{pkg: "internal/gittest"}, {pkg: "internal/logtest"}, {pkg: "internal/podmantest"}, {pkg: "internal/txtar"},
	{pkg: "internal/safefile/..."}, {pkg: "internal/ratelog"}, {pkg: "internal/udpserve"}, {pkg: "internal/packaging"}, {pkg: "internal/imports"}, {pkg: "internal/tlstest"}, {pkg: "internal/browsertest"}, {pkg: "internal/benchcpu"},
}

// match reports whether a module-relative path is pattern or, for
// "p/...", p or below it.
func match(pattern, rel string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == p || strings.HasPrefix(rel, p+"/")
	}
	return rel == pattern
}

// ruleFor picks the most specific rule: "omaha/updater" over "omaha/...".
func ruleFor(rel string) (rule, bool) {
	best, found := rule{}, false
	for _, r := range rules {
		if match(r.pkg, rel) && (!found || len(strings.TrimSuffix(r.pkg, "/...")) > len(strings.TrimSuffix(best.pkg, "/..."))) {
			best, found = r, true
		}
	}
	return best, found
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// violations checks packages against the rules and returns one line per
// forbidden arrow or package without a rule.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		r, ok := ruleFor(rel)
		if !ok {
			out = append(out, rel+": no rule; add one to internal/imports and a row to README's Layout")
			continue
		}
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if !slices.ContainsFunc(r.allow, func(a string) bool { return match(a, to) }) {
				out = append(out, rel+" imports "+to+": forbidden ("+r.why+")")
			}
		}
		for _, b := range r.banned {
			if i := slices.IndexFunc(p.Deps, func(d string) bool { return strings.HasPrefix(d, b) }); i >= 0 {
				out = append(out, rel+" depends on "+p.Deps[i]+": forbidden ("+r.why+")")
			}
		}
	}
	return out
}

func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; is the module root right?", len(pkgs))
	}
	return pkgs
}

func TestLayout(t *testing.T) {
	for _, v := range violations(list(t)) {
		t.Error(v)
	}
}

// TestRulesBite feeds the checker arrows the Layout forbids, so a rule
// table that lets everything through fails here.
func TestRulesBite(t *testing.T) {
	bad := []pkg{
		{ImportPath: module + "schema", Imports: []string{module + "render"}},
		{ImportPath: module + "render", Imports: []string{module + "source"}},
		{ImportPath: module + "source", Imports: []string{module + "render"}},
		{ImportPath: module + "serve/httpserver", Imports: []string{module + "schema"}},
		{ImportPath: module + "serve/proxydhcp", Imports: []string{module + "reconcile"}},
		{ImportPath: module + "serve/proxydhcp6", Imports: []string{module + "serve/proxydhcp"}},
		{ImportPath: module + "serve/httpserver", Deps: []string{"github.com/go-git/go-git/v5"}},
		{ImportPath: module + "omaha", Imports: []string{module + "omaha/updater"}},
		{ImportPath: module + "cmd/pxeops", Imports: []string{module + "serve/httpserver"}},
		{ImportPath: module + "serve/httpserver", Imports: []string{module + "serve/tftpserver"}},
		{ImportPath: module + "newpkg"},
	}
	for _, p := range bad {
		if v := violations([]pkg{p}); len(v) != 1 {
			t.Errorf("%s → %v%v: got %q, want one violation", p.ImportPath, p.Imports, p.Deps, v)
		}
	}
	good := []pkg{
		{ImportPath: module + "serve/tftpserver", Imports: []string{module + "serve/tftpserver/pintftp", module + "internal/safefile"}},
		{ImportPath: module + "omaha/updater", Imports: []string{module + "omaha", module + "source"}},
		{ImportPath: module + "internal/daemon", Imports: []string{module + "serve/httpserver", module + "reconcile"}},
		{ImportPath: module + "serve/httpserver", Imports: []string{module + "render", "github.com/prometheus/client_golang/prometheus"}},
	}
	for _, p := range good {
		if v := violations([]pkg{p}); len(v) != 0 {
			t.Errorf("%s: got %q, want none", p.ImportPath, v)
		}
	}
}
