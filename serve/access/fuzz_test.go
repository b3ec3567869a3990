package access

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// FuzzVerify: whatever a request presents as a token is refused unless it
// is the one issued for its MAC, address and revision, and never panics.
func FuzzVerify(f *testing.F) {
	tokens := newTokens(f)
	good := tokens.Issue(macX, routedIP, "rev1", t0)
	for _, s := range []string{good, good[:TokenLen-1] + "A", "", strings.Repeat("A", TokenLen), strings.Repeat("_", TokenLen), "%41" + good[3:], good + "="} {
		f.Add(s, "10.9.0.5")
	}
	f.Add(good, "::ffff:10.9.0.5")
	f.Add(good, "fe80::1")
	f.Fuzz(func(t *testing.T, tok, addr string) {
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		r := tokens.Verify(tok, macX, ip, "rev1", t0)
		want := DenyBadToken
		if tok == good && ip.Unmap() == routedIP {
			want = AllowToken
		}
		if r != want {
			t.Fatalf("Verify(%q, %s) = %v, want %v", tok, ip, r, want)
		}
	})
}

// FuzzSplitToken: the query a request presents. What SplitToken passes
// on never carries the token parameter, and keeps every other part.
func FuzzSplitToken(f *testing.F) {
	for _, s := range []string{"mac=52-54-00-12-34-56&uuid=&hostname=&serial=&arch=x86_64", "mac=x&pxeops.token=abc", "pxeops.token=a&pxeops.token=b",
		"pxeops.token", "&&pxeops.token=x&&", "pxeops.token=%00", "a=b;pxeops.token=c", "pxeops.token=a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		token, rest, err := SplitToken(raw)
		if err != nil {
			return
		}
		n := 0
		for part := range strings.SplitSeq(raw, "&") {
			if k, _, _ := strings.Cut(part, "="); k == TokenParam {
				n++
			}
		}
		if (n == 1) != (token != "") || n > 1 {
			t.Fatalf("SplitToken(%q): token %q from %d token parameters", raw, token, n)
		}
		for part := range strings.SplitSeq(rest, "&") {
			if k, _, _ := strings.Cut(part, "="); k == TokenParam {
				t.Fatalf("SplitToken(%q) left the token in %q", raw, rest)
			}
		}
		if n == 0 && rest != raw {
			t.Fatalf("SplitToken(%q) changed a query without a token to %q", raw, rest)
		}
	})
}

// FuzzAddToken: scripts pxeops serves (rendered from the tree, so any
// text). The token is only ever added: taking it out again gives the
// script back, and each one added sits in a URL of the server.
func FuzzAddToken(f *testing.F) {
	const base = "http://10.0.0.3:8080"
	for _, s := range []string{
		"#!ipxe\nkernel " + base + "/assets/k pxeops.config=" + base + "/config?mac=52:54:00:12:34:56\nboot\n",
		base + "/ignition?mac=${mac:hexhyp}#x", base + "/cloud?", base + "/metadata?a&", base + "/config" + base + "/config",
		base + "/generic?pxeops.token=Q", "\"" + base + "/config\"", base + "/", base,
	} {
		f.Add(s)
	}
	const tok = "Tk9-_q"
	f.Fuzz(func(t *testing.T, script string) {
		if strings.Contains(script, tok) {
			return
		}
		out := AddToken([]byte(script), tok, base)
		// Without the tokens, out is the script with at most a '?' or
		// '&' before each.
		back := bytes.ReplaceAll(out, []byte(TokenParam+"="+tok), nil)
		i := 0
		for j := 0; j < len(back); j++ {
			if i < len(script) && back[j] == script[i] {
				i++
			} else if back[j] != '?' && back[j] != '&' {
				t.Fatalf("AddToken(%q) = %q: not only tokens added", script, out)
			}
		}
		if i != len(script) {
			t.Fatalf("AddToken(%q) = %q: lost part of the script", script, out)
		}
		added := bytes.Count(out, []byte(TokenParam+"="+tok))
		if added > strings.Count(script, base+"/") {
			t.Fatalf("AddToken(%q) added %d tokens", script, added)
		}
	})
}
