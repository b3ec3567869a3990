package httpserver

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/logtest"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/access"
)

// neighbours is a neighbour table in memory.
type neighbours map[string]string

func (n neighbours) MAC(ip netip.Addr) (string, bool) { mac, ok := n[ip.String()]; return mac, ok }

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

// accessTree has a config URL in node1's kernel arguments, as Ignition
// and cloud-init profiles do.
var accessTree = fstest.MapFS{
	"profiles/ign.yaml":  {Data: []byte("kernel: /assets/k\nargs: [\"ignition.config.url={{ .ServerURL }}/ignition?mac={{ .MAC }}\", console=ttyS0]\nconfig: {template: ign.yaml, type: ignition}\n")},
	"groups/byhost.yaml": {Data: []byte("profile: plain\nselector: {hostname: h1}\n")},
}

var tokenRE = regexp.MustCompile(`pxeops\.token=([A-Za-z0-9_-]+)`)

type accessCase struct {
	t       *testing.T
	h       http.Handler
	reg     *prometheus.Registry
	logs    *logtest.Buffer
	binding *access.BindingStore
}

func newAccessCase(t *testing.T, o AccessOptions) *accessCase {
	c := &accessCase{t: t, reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}, binding: access.NewBindings(time.Minute, 0)}
	if o.Neighbours == nil {
		o.Neighbours = neighbours{"192.0.2.1": mac1, "192.0.2.2": mac2}
	}
	o.Bindings = c.binding
	var err error
	c.h, err = New(fixedSnapshots{loadTestTree(t, accessTree)}, Options{ServerURL: "http://pxe.test", Registry: c.reg, Access: o,
		Logger: slog.New(slog.NewTextHandler(c.logs, nil))})
	must(t, err)
	return c
}

func (c *accessCase) get(from, target string) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = from + ":40000"
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

func (c *accessCase) expect(from, target string, code int, body string) *httptest.ResponseRecorder {
	c.t.Helper()
	w := c.get(from, target)
	if w.Code != code || !strings.Contains(w.Body.String(), body) {
		c.t.Errorf("GET %s from %s = %d %q, want %d containing %q", target, from, w.Code, w.Body.String(), code, body)
	}
	return w
}

// count reads one series of pxeops_access_decisions_total off /metrics.
func (c *accessCase) count(result, reason string) float64 {
	c.t.Helper()
	series := `pxeops_access_decisions_total{reason="` + reason + `",result="` + result + `"} `
	for line := range strings.Lines(c.get("127.0.0.1", "/metrics").Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(c.t, err)
			return f
		}
	}
	c.t.Fatalf("no %s on /metrics", series)
	return 0
}

// On one segment: each host gets its own MAC's answers, nobody else's.
func TestAccessMachineOnOneSegment(t *testing.T) {
	c := newAccessCase(t, AccessOptions{Mode: access.Machine})
	w := c.expect("192.0.2.1", "/ipxe?mac="+mac1, 200, "ignition.config.url=http://pxe.test/ignition?mac="+mac1+"&pxeops.token=")
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a tokened script may be cached: %q", w.Header().Get("Cache-Control"))
	}
	if w := c.expect("192.0.2.1", "/config?mac="+mac1, 200, `"ignition"`); w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a checked config may be cached: %q", w.Header().Get("Cache-Control"))
	}
	c.expect("192.0.2.1", "/ignition?mac="+mac1, 200, `"ignition"`)
	c.expect("192.0.2.1", "/metadata?mac="+mac1, 200, "ROLE=etcd")
	for _, target := range []string{"/ipxe?mac=" + mac1, "/config?mac=" + mac1, "/ignition?mac=" + mac1, "/metadata?mac=" + mac1, "/pixiecore/v1/boot/" + mac1} {
		c.expect("192.0.2.2", target, 403, "refused (other_mac)")
	}
	// The token from 192.0.2.1's script does not help the neighbour with
	// another MAC, even on its own address.
	tok := tokenRE.FindStringSubmatch(w.Body.String())[1]
	c.expect("192.0.2.2", "/config?mac="+mac1+"&pxeops.token="+tok, 403, "refused (other_mac)")
	c.expect("192.0.2.1", "/ipxe?hostname=h1", 403, "refused (no_mac)")
	// A machine gets its own even if its group has no config (404, not 403).
	c.expect("192.0.2.2", "/config?mac="+mac2, 404, "has no config")
	if got := c.count("refused", "other_mac"); got != 6 {
		t.Errorf("other_mac refusals counted %v, want 6", got)
	}
	if got := c.count("served", "neighbour"); got != 5 {
		t.Errorf("neighbour allowances counted %v, want 5", got)
	}
	// Refusals are logged once per interval, with a count; never the token.
	for range 50 {
		c.get("192.0.2.2", "/config?mac="+mac1)
	}
	logs := c.logs.String()
	if n := strings.Count(logs, "access: refused"); n < 1 || n > 3 {
		t.Errorf("%d refusal lines for 57 refusals:\n%s", n, logs)
	}
	if strings.Contains(logs, tok) {
		t.Errorf("a token reached the log:\n%s", logs)
	}
}

// Across a router: the script goes to the address of the MAC's port-4011
// exchange, with a token; the config goes to the token, from that address.
func TestAccessMachineRouted(t *testing.T) {
	c := newAccessCase(t, AccessOptions{Mode: access.Machine})
	const machine, attacker = "10.9.0.5", "10.9.0.66"
	c.expect(machine, "/ipxe?mac="+mac1, 403, "refused (not_bound)")
	c.binding.Learn(mac1, netip.MustParseAddr(machine), time.Now())
	w := c.expect(machine, "/ipxe?mac="+mac1, 200, "&pxeops.token=")
	c.expect(attacker, "/ipxe?mac="+mac1, 403, "refused (not_bound)")
	url := regexp.MustCompile(`ignition\.config\.url=(\S+)`).FindStringSubmatch(w.Body.String())[1]
	target := strings.TrimPrefix(url, "http://pxe.test")
	c.expect(machine, target, 200, `"ignition"`)
	c.expect(machine, strings.Replace(target, "/ignition?", "/config?", 1), 200, `"ignition"`)
	c.expect(attacker, target, 403, "refused (bad_token)")
	c.expect(machine, "/ignition?mac="+mac1, 403, "refused (no_token)")
	c.expect(machine, strings.Replace(target, mac1, mac2, 1), 403, "refused (bad_token)")
	c.expect(machine, target+"&pxeops.token=x", 400, "given twice")
	// The Pixiecore API is asked by a Pixiecore server, not the machine.
	c.expect(attacker, "/pixiecore/v1/boot/"+mac1, 403, "refused (not_bound)")
}

// Auto, the default, checks only the groups whose profile uses a secret.
func TestAccessAutoChecksSecretsOnly(t *testing.T) {
	c := newAccessCase(t, AccessOptions{Secret: func(p *render.Profile) bool { return p.ID == "ign" }})
	c.expect("192.0.2.2", "/ipxe?mac="+mac1, 403, "refused (other_mac)")
	c.expect("192.0.2.2", "/config?mac="+mac1, 403, "refused (other_mac)")
	c.expect("192.0.2.1", "/config?mac="+mac1, 200, `"ignition"`)
	c.expect("192.0.2.1", "/ipxe?mac="+mac2, 200, "kernel http://pxe.test/assets/k") // plain: no secret
	if got := c.count("served", "no_secret"); got != 1 {
		t.Errorf("no_secret counted %v", got)
	}
	// Without secrets, auto is today's open server.
	c = newAccessCase(t, AccessOptions{})
	w := c.expect("203.0.113.9", "/ipxe?mac="+mac1, 200, "ignition.config.url=http://pxe.test/ignition?mac="+mac1+" ")
	if strings.Contains(w.Body.String(), "pxeops.token") {
		t.Errorf("an open answer got a token:\n%s", w.Body.String())
	}
	c.expect("203.0.113.9", "/config?mac="+mac1, 200, `"ignition"`)
	// The token parameter is never a label.
	c.expect("203.0.113.9", "/metadata?mac="+mac1+"&pxeops.token=abc", 200, "MAC=")
	if w := c.get("203.0.113.9", "/metadata?mac="+mac1+"&pxeops.token=abc"); strings.Contains(w.Body.String(), "TOKEN") {
		t.Errorf("the token became a label:\n%s", w.Body.String())
	}
}

func TestAccessOpenServesEveryone(t *testing.T) {
	c := newAccessCase(t, AccessOptions{Mode: access.Open, Secret: func(*render.Profile) bool { return true }})
	c.expect("192.0.2.2", "/config?mac="+mac1, 200, `"ignition"`)
	if got := c.count("served", "open"); got != 1 {
		t.Errorf("open counted %v", got)
	}
}

func TestCheckAccess(t *testing.T) {
	snap := loadTestTree(t, fstest.MapFS{
		"groups/default.yaml": {Data: []byte("profile: ign\n")},
	})
	secret := func(p *render.Profile) bool { return p.ID == "ign" }
	files := func(ps []access.Problem) string {
		var fs []string
		for _, p := range ps {
			if p.Message == "" {
				t.Errorf("problem %v", p)
			}
			fs = append(fs, p.Group)
		}
		slices.Sort(fs)
		return strings.Join(fs, ",")
	}
	if got := files(CheckAccess(access.Open, snap, secret)); got != "default,node1" {
		t.Errorf("open: %s", got)
	}
	if got := files(CheckAccess(access.Auto, snap, secret)); got != "default" {
		t.Errorf("auto: %s", got)
	}
	if got := CheckAccess(access.Open, snap, nil); got != nil {
		t.Errorf("without secrets, open is fine: %v", got)
	}
}
