package access

import (
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	macX = "52:54:00:00:00:01"
	macY = "52:54:00:00:00:02"
)

var (
	ipX      = netip.MustParseAddr("10.0.0.5")
	ipY      = netip.MustParseAddr("10.0.0.6")
	routedIP = netip.MustParseAddr("10.9.0.5")
	t0       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// table is a neighbour table in memory.
type table map[netip.Addr]string

func (t table) MAC(ip netip.Addr) (string, bool) { mac, ok := t[ip]; return mac, ok }

func newTokens(t testing.TB) *Tokens {
	t.Helper()
	tok, err := NewTokens([]byte(strings.Repeat("k", 32)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDecide(t *testing.T) {
	tokens := newTokens(t)
	neigh := table{ipX: macX, ipY: macY}
	bindings := NewBindings(time.Minute, 0)
	bindings.Learn(macX, routedIP, t0)
	good := tokens.Issue(macX, routedIP, "rev1", t0)
	for _, c := range []struct {
		name  string
		mode  Mode
		req   Request
		want  Reason
		issue bool
	}{
		{"open serves anyone", Open, Request{MAC: macX, Remote: ipY, Protected: true}, AllowOpen, false},
		{"auto serves an answer without secrets", Auto, Request{MAC: macX, Remote: ipY}, AllowNoSecret, false},
		{"auto checks an answer with a secret", Auto, Request{MAC: macX, Remote: ipY, Protected: true}, DenyOtherMAC, false},
		{"machine checks every answer", Machine, Request{MAC: macX, Remote: ipY}, DenyOtherMAC, false},
		{"no MAC, nothing to check", Machine, Request{Remote: ipX}, DenyNoMAC, false},
		{"the neighbour is the MAC asked for: script", Machine, Request{Kind: Script, MAC: macX, Remote: ipX}, AllowNeighbour, true},
		{"the neighbour is the MAC asked for: config", Machine, Request{Kind: Config, MAC: macX, Remote: ipX}, AllowNeighbour, false},
		{"a neighbour with another MAC", Machine, Request{Kind: Config, MAC: macX, Remote: ipY}, DenyOtherMAC, false},
		{"a neighbour with another MAC and a valid token for its address is still refused", Machine,
			Request{Kind: Config, MAC: macX, Remote: ipY, Token: tokens.Issue(macX, ipY, "rev1", t0), Revision: "rev1", Now: t0}, DenyOtherMAC, false},
		{"routed script from the bound address", Machine, Request{Kind: Script, MAC: macX, Remote: routedIP, Now: t0.Add(time.Second)}, AllowBinding, true},
		{"routed script from elsewhere", Machine, Request{Kind: Script, MAC: macX, Remote: netip.MustParseAddr("10.9.0.66"), Now: t0}, DenyNotBound, false},
		{"routed script, binding expired", Machine, Request{Kind: Script, MAC: macX, Remote: routedIP, Now: t0.Add(time.Minute)}, DenyNotBound, false},
		{"routed script of another MAC", Machine, Request{Kind: Script, MAC: macY, Remote: routedIP, Now: t0}, DenyNotBound, false},
		{"routed config with the token", Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Token: good, Revision: "rev1", Now: t0}, AllowToken, false},
		{"routed config without a token", Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Now: t0}, DenyNoToken, false},
		{"routed config, token replayed from another address", Machine, Request{Kind: Config, MAC: macX, Remote: netip.MustParseAddr("10.9.0.66"), Token: good, Revision: "rev1", Now: t0}, DenyBadToken, false},
		{"routed config, token for another MAC", Machine, Request{Kind: Config, MAC: macY, Remote: routedIP, Token: good, Revision: "rev1", Now: t0}, DenyBadToken, false},
		{"routed config, token of another revision", Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Token: good, Revision: "rev2", Now: t0}, DenyBadToken, false},
		{"routed config, token expired", Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Token: good, Revision: "rev1", Now: t0.Add(time.Minute)}, DenyExpiredToken, false},
		{"routed config, binding alone is not enough", Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Now: t0}, DenyNoToken, false},
	} {
		d := Decide(c.mode, c.req, neigh, bindings, tokens)
		if d.Reason != c.want || d.IssueToken != c.issue {
			t.Errorf("%s: %v issue=%v, want %v issue=%v", c.name, d.Reason, d.IssueToken, c.want, c.issue)
		}
		if d.Allowed() != strings.HasPrefix(c.name, "open") && d.Allowed() != (c.want < DenyNoMAC) {
			t.Errorf("%s: Allowed() = %v", c.name, d.Allowed())
		}
	}
	// Without a binding store or tokens, routed requests are refused.
	if d := Decide(Machine, Request{Kind: Script, MAC: macX, Remote: routedIP, Now: t0}, neigh, nil, nil); d.Reason != DenyNotBound {
		t.Errorf("no bindings: %v", d.Reason)
	}
	if d := Decide(Machine, Request{Kind: Config, MAC: macX, Remote: routedIP, Token: good, Revision: "rev1", Now: t0}, neigh, nil, nil); d.Reason != DenyBadToken {
		t.Errorf("no tokens: %v", d.Reason)
	}
}

func TestReasonsHaveNamesAndSentences(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		name := r.String()
		if name == "" || strings.HasPrefix(name, "Reason(") || seen[name] {
			t.Errorf("reason %d: name %q", int(r), name)
		}
		seen[name] = true
		if !r.Allowed() && r.Explain() == name {
			t.Errorf("refusal %s has no sentence", name)
		}
	}
}

func TestParseMode(t *testing.T) {
	for i, name := range Modes() {
		m, err := ParseMode(name)
		if err != nil || m != Mode(i) || m.String() != name {
			t.Errorf("ParseMode(%q) = %v, %v", name, m, err)
		}
	}
	if _, err := ParseMode("closed"); err == nil || !strings.Contains(err.Error(), "auto, machine or open") {
		t.Errorf("ParseMode(closed): %v", err)
	}
	if Mode(0) != Auto {
		t.Error("the zero mode must be auto, the default")
	}
}

func TestTokens(t *testing.T) {
	tokens := newTokens(t)
	tok := tokens.Issue(macX, routedIP, "rev1", t0)
	if len(tok) != TokenLen {
		t.Fatalf("token %q is %d long, want %d", tok, len(tok), TokenLen)
	}
	if strings.ContainsAny(tok, "$&?#% +/=") {
		t.Errorf("token %q needs escaping somewhere", tok)
	}
	mapped := netip.AddrFrom16(routedIP.As16())
	other, _ := NewTokens([]byte(strings.Repeat("j", 32)), time.Minute)
	flip := []byte(tok)
	flip[5] ^= 1 // the expiry
	for _, c := range []struct {
		name string
		got  Reason
		want Reason
	}{
		{"valid", tokens.Verify(tok, macX, routedIP, "rev1", t0), AllowToken},
		{"valid, the address IPv4-mapped", tokens.Verify(tok, macX, mapped, "rev1", t0), AllowToken},
		{"valid until the last second", tokens.Verify(tok, macX, routedIP, "rev1", t0.Add(time.Minute-time.Second)), AllowToken},
		{"expired", tokens.Verify(tok, macX, routedIP, "rev1", t0.Add(time.Minute)), DenyExpiredToken},
		{"another MAC", tokens.Verify(tok, macY, routedIP, "rev1", t0), DenyBadToken},
		{"another address", tokens.Verify(tok, macX, ipX, "rev1", t0), DenyBadToken},
		{"another revision", tokens.Verify(tok, macX, routedIP, "rev2", t0), DenyBadToken},
		{"another key", other.Verify(tok, macX, routedIP, "rev1", t0), DenyBadToken},
		{"expiry changed", tokens.Verify(string(flip), macX, routedIP, "rev1", t0), DenyBadToken},
		{"cut short", tokens.Verify(tok[:TokenLen-1], macX, routedIP, "rev1", t0), DenyBadToken},
		{"not base64", tokens.Verify(strings.Repeat("!", TokenLen), macX, routedIP, "rev1", t0), DenyBadToken},
		{"empty", tokens.Verify("", macX, routedIP, "rev1", t0), DenyBadToken},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// The revision and MAC fields cannot run into each other.
	a := tokens.Issue("ab", routedIP, "c", t0)
	if tokens.Verify(a, "a", routedIP, "bc", t0) != DenyBadToken {
		t.Error("fields are not separated")
	}
	if _, err := NewTokens(make([]byte, 31), time.Minute); err == nil {
		t.Error("a 31-byte key was taken")
	}
	if _, err := NewTokens(make([]byte, 32), 0); err == nil {
		t.Error("a zero lifetime was taken")
	}
}

func TestBindings(t *testing.T) {
	b := NewBindings(time.Minute, 3)
	b.Learn(macX, ipX, t0)
	switch {
	case !b.Bound(macX, ipX, t0.Add(59*time.Second)):
		t.Error("not bound within ttl")
	case b.Bound(macX, ipX, t0.Add(time.Minute)):
		t.Error("bound at ttl")
	case b.Bound(macX, ipY, t0):
		t.Error("bound to another address")
	case b.Bound(macY, ipX, t0):
		t.Error("another MAC bound")
	case b.Bound(macX, netip.AddrFrom16(ipX.As16()), t0) != true:
		t.Error("the IPv4-mapped address is another")
	}
	// The latest exchange wins: firmware and iPXE may get two addresses.
	b.Learn(macX, ipY, t0.Add(10*time.Second))
	if b.Bound(macX, ipX, t0.Add(11*time.Second)) || !b.Bound(macX, ipY, t0.Add(11*time.Second)) {
		t.Error("the latest address does not win")
	}
	// ... and lives its own ttl: the first entry's expiry does not drop it.
	b.Learn(macY, ipX, t0.Add(65*time.Second))
	if !b.Bound(macX, ipY, t0.Add(65*time.Second)) {
		t.Error("the re-learned binding expired with the first one")
	}
	// Full of live entries: a new MAC is not learned, a known one is.
	b.Learn("52:54:00:00:00:03", ipX, t0.Add(66*time.Second))
	if b.Learn("52:54:00:00:00:04", ipX, t0.Add(66*time.Second)) {
		t.Error("a fourth MAC was learned in a store of three")
	}
	if !b.Learn(macY, ipY, t0.Add(67*time.Second)) {
		t.Error("a known MAC was not re-learned in a full store")
	}
	// Once they expire, there is room again.
	if !b.Learn("52:54:00:00:00:04", ipX, t0.Add(10*time.Minute)) || b.Len() != 1 {
		t.Errorf("after expiry: learned into a store of %d", b.Len())
	}
}

// A MAC re-learned over and over keeps the store's bookkeeping bounded.
func TestBindingsRelearnIsBounded(t *testing.T) {
	b := NewBindings(time.Hour, 4)
	for i := range 10000 {
		b.Learn(macX, ipX, t0.Add(time.Duration(i)*time.Millisecond))
	}
	b.mu.Lock()
	n := len(b.order) - b.head
	b.mu.Unlock()
	if n > 8 || !b.Bound(macX, ipX, t0.Add(10*time.Second)) {
		t.Errorf("%d entries kept for one MAC", n)
	}
}

func TestSplitToken(t *testing.T) {
	for _, c := range []struct{ raw, token, rest, err string }{
		{"mac=x&uuid=y", "", "mac=x&uuid=y", ""},
		{"mac=x&pxeops.token=abc&uuid=y", "abc", "mac=x&uuid=y", ""},
		{"pxeops.token=abc", "abc", "", ""},
		{"mac=x&pxeops.token=a&pxeops.token=a", "", "", "given twice"},
		{"mac=x&pxeops.token=", "", "", "empty"},
		{"mac=x&pxeops.token", "", "", "empty"},
		{"mac=x&xpxeops.token=abc", "", "mac=x&xpxeops.token=abc", ""}, // a label, not the token
	} {
		token, rest, err := SplitToken(c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SplitToken(%q): err %v, want %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil || token != c.token || rest != c.rest {
			t.Errorf("SplitToken(%q) = %q, %q, %v; want %q, %q", c.raw, token, rest, err, c.token, c.rest)
		}
	}
}

func TestAddToken(t *testing.T) {
	const base = "http://10.0.0.3:8080"
	for _, c := range []struct{ in, want string }{
		{"#!ipxe\nkernel " + base + "/assets/k pxeops.config=" + base + "/config?mac=52:54:00:00:00:01 quiet\nboot\n",
			"#!ipxe\nkernel " + base + "/assets/k pxeops.config=" + base + "/config?mac=52:54:00:00:00:01&pxeops.token=T quiet\nboot\n"},
		{"ignition.config.url=" + base + "/ignition?mac=${mac:hexhyp}&os=installed", "ignition.config.url=" + base + "/ignition?mac=${mac:hexhyp}&os=installed&pxeops.token=T"},
		{"ds=nocloud-net;s=" + base + "/cloud\n", "ds=nocloud-net;s=" + base + "/cloud?pxeops.token=T\n"},
		{base + "/generic?", base + "/generic?pxeops.token=T"},
		{base + "/metadata?a=b&", base + "/metadata?a=b&pxeops.token=T"},
		{base + "/config?mac=x#frag", base + "/config?mac=x&pxeops.token=T#frag"},
		{"'" + base + "/config?mac=x' " + base + "/config", "'" + base + "/config?mac=x&pxeops.token=T' " + base + "/config?pxeops.token=T"},
		{base + "/config?mac=x&pxeops.token=U", base + "/config?mac=x&pxeops.token=U"},
		{base + "/configs?mac=x " + base + "/assets/config " + base + "/ipxe?mac=x", base + "/configs?mac=x " + base + "/assets/config " + base + "/ipxe?mac=x"},
		{"http://elsewhere/config?mac=x", "http://elsewhere/config?mac=x"},
		{"https://10.0.0.3:8443/config?mac=x " + base + "/config?mac=x", "https://10.0.0.3:8443/config?mac=x&pxeops.token=T " + base + "/config?mac=x&pxeops.token=T"},
		// The installer's completion report is decided as the config is.
		{"pxeops.installed=" + base + "/v1/machines/52:54:00:00:00:01/installed quiet", "pxeops.installed=" + base + "/v1/machines/52:54:00:00:00:01/installed?pxeops.token=T quiet"},
		{base + "/v1/machines/52:54:00:00:00:01/installed?rack=r1", base + "/v1/machines/52:54:00:00:00:01/installed?rack=r1&pxeops.token=T"},
		{base + "/v1/machines/52:54:00:00:00:01/installedx " + base + "/v1/machines//installed " + base + "/v1/machines/a/b/installed " + base + "/v1/machines/52:54:00:00:00:01/reset",
			base + "/v1/machines/52:54:00:00:00:01/installedx " + base + "/v1/machines//installed " + base + "/v1/machines/a/b/installed " + base + "/v1/machines/52:54:00:00:00:01/reset"},
	} {
		got := string(AddToken([]byte(c.in), "T", base, "", "https://10.0.0.3:8443"))
		if got != c.want {
			t.Errorf("AddToken(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	in := []byte("#!ipxe\nboot\n")
	if out := AddToken(in, "T", base); &out[0] != &in[0] {
		t.Error("a script without config URLs was copied")
	}
}

func TestCheckTree(t *testing.T) {
	groups := []Group{
		{ID: "plain"},
		{ID: "node1", ByMAC: true, Secret: true},
		{ID: "workers", Secret: true},
	}
	for _, c := range []struct {
		mode Mode
		want []string
	}{
		{Open, []string{"node1", "workers"}},
		{Auto, []string{"workers"}},
		{Machine, []string{"workers"}},
	} {
		var got []string
		for _, p := range CheckTree(c.mode, groups) {
			got = append(got, p.Group)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%v: problems in %v, want %v", c.mode, got, c.want)
		}
	}
	if ps := CheckTree(Open, []Group{{ID: "plain"}}); ps != nil {
		t.Errorf("a tree without secrets under open: %v", ps)
	}
}

func BenchmarkVerify(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	tokens, _ := NewTokens(key, time.Minute)
	tok := tokens.Issue(macX, routedIP, "0123456789abcdef0123456789abcdef01234567", t0)
	b.ReportAllocs()
	for b.Loop() {
		if tokens.Verify(tok, macX, routedIP, "0123456789abcdef0123456789abcdef01234567", t0) != AllowToken {
			b.Fatal("refused")
		}
	}
}
