package render

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/schema"
)

func mustLoad(t testing.TB, fsys fstest.MapFS) *Snapshot {
	t.Helper()
	snap, diags := Load(context.Background(), fsys, Options{ServerURL: "http://pxe.test:8080"})
	if snap == nil {
		t.Fatalf("tree invalid: %v", diags)
	}
	return snap
}

const testProfile = "kernel: /assets/k\ninitrd: [/assets/i]\nargs: [console=ttyS0]\n"

// The digest follows meaning, not formatting: comments, key order, quoting,
// flow style and MAC spelling do not change it; a changed value does.
func TestDigestFollowsMeaning(t *testing.T) {
	a := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte(testProfile)},
		"groups/g.yaml":   {Data: []byte("profile: p\nselector:\n  mac: 52:54:00:00:00:01\n  rack: r1\nmetadata:\n  n: 1\n")},
	}
	b := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("# same profile\nargs:\n  - \"console=ttyS0\"\ninitrd:\n  - /assets/i\nkernel: '/assets/k'\n")},
		"groups/g.yaml":   {Data: []byte("metadata: {n: 1}\nselector: {rack: r1, mac: 52-54-00-00-00-01}\nprofile: p # trailing comment\n")},
	}
	c := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte(testProfile)},
		"groups/g.yaml":   {Data: []byte("profile: p\nselector:\n  mac: 52:54:00:00:00:01\n  rack: r1\nmetadata:\n  n: \"1\"\n")},
	}
	da, db, dc := mustLoad(t, a).Digest, mustLoad(t, b).Digest, mustLoad(t, c).Digest
	if da != db {
		t.Errorf("reformatted tree changed the digest: %s != %s", da, db)
	}
	if da == dc {
		t.Errorf("metadata n: 1 and n: \"1\" mean different things but share digest %s", da)
	}
	if !strings.HasPrefix(da, "sha256:") || len(da) != len("sha256:")+64 {
		t.Errorf("digest %q is not sha256:<64 hex>", da)
	}
}

// Lookup must agree with the definition in design.md, checked by brute
// force over random trees and machines: the matching group with the most
// keys wins, ties go to the lowest id, the default catches the rest.
func TestLookupMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := map[string][]string{
		"mac":      {"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"},
		"uuid":     {"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"},
		"hostname": {"a", "b"},
		"serial":   {"s1", "s2"},
		"arch":     {"x86_64", "arm64"},
		"rack":     {"r1", "r2"},
	}
	keys := []string{"mac", "uuid", "hostname", "serial", "arch", "rack"}
	for round := range 200 {
		fsys := fstest.MapFS{"profiles/p.yaml": {Data: []byte(testProfile)}}
		seen := map[string]bool{}
		for i := range 1 + rng.IntN(12) {
			var sel strings.Builder
			var canon []string
			for _, k := range keys {
				if rng.IntN(3) == 0 {
					v := values[k][rng.IntN(len(values[k]))]
					fmt.Fprintf(&sel, "  %s: %s\n", k, v)
					canon = append(canon, k+"="+v)
				}
			}
			c := strings.Join(canon, " ")
			if seen[c] {
				continue // identical selectors are a validation error
			}
			seen[c] = true
			body := "profile: p\n"
			if sel.Len() > 0 {
				body += "selector:\n" + sel.String()
			}
			fsys[fmt.Sprintf("groups/g%02d.yaml", i)] = &fstest.MapFile{Data: []byte(body)}
		}
		snap := mustLoad(t, fsys)
		for range 30 {
			q := url.Values{}
			for _, k := range keys {
				if rng.IntN(2) == 0 {
					q.Set(k, values[k][rng.IntN(len(values[k]))])
				}
			}
			m, err := schema.ParseMachine(q)
			if err != nil {
				t.Fatal(err)
			}
			want := bruteForce(snap.Tree, &m)
			got := ""
			if g := snap.Lookup(&m); g != nil {
				got = g.ID
			}
			if got != want {
				t.Fatalf("round %d: machine %s: Lookup = %q, definition says %q", round, m.String(), got, want)
			}
		}
	}
}

func bruteForce(t *schema.Tree, m *schema.Machine) string {
	best, bestKeys := "", -1
	for id, g := range t.Groups {
		ok := true
		for k, v := range g.Selector {
			if m.Value(k) != v {
				ok = false
			}
		}
		if ok && (len(g.Selector) > bestKeys || len(g.Selector) == bestKeys && id < best) {
			best, bestKeys = id, len(g.Selector)
		}
	}
	return best
}

// A template that renders a newline from metadata is caught at request
// time too, not only by check's sample run.
func TestScriptRefusesNewlineFromData(t *testing.T) {
	snap := mustLoad(t, fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nargs:\n  - \"x={{ .Labels.note }}\"\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\nselector: {note: ok}\n")},
	})
	g := snap.Lookup(&schema.Machine{Labels: map[string]string{"note": "ok"}})
	var b strings.Builder
	// Labels normally pass ParseMachine; this one is built by hand to
	// prove the last line of defence.
	err := snap.WriteScript(&b, g, &schema.Machine{Labels: map[string]string{"note": "a\nshell"}})
	if err == nil || b.Len() != 0 {
		t.Fatalf("WriteScript = %v, wrote %q; want ErrUnsafeArg and nothing written", err, b.String())
	}
}

// A group's script is rendered once when every argument reads only what
// the selector fixes; an argument reading anything else (the hostname of
// a MAC group) is rendered for each machine.
func TestScriptReuseFollowsTheSelector(t *testing.T) {
	snap := mustLoad(t, fstest.MapFS{
		"profiles/bymac.yaml":  {Data: []byte("kernel: /assets/k\nargs: [\"m={{ .MAC }}\", \"g={{ .Group }}\", \"r={{ .Labels.rack }}\"]\n")},
		"profiles/byhost.yaml": {Data: []byte("kernel: /assets/k\nargs: [\"m={{ .MAC }}\", \"h={{ .Hostname }}\"]\n")},
		"groups/a.yaml":        {Data: []byte("profile: bymac\nselector: {mac: \"52:54:00:00:00:01\", rack: r1}\n")},
		"groups/b.yaml":        {Data: []byte("profile: byhost\nselector: {mac: \"52:54:00:00:00:02\"}\n")},
	})
	script := func(m schema.Machine) string {
		var b strings.Builder
		if err := snap.WriteScript(&b, snap.Lookup(&m), &m); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a1 := script(schema.Machine{MAC: "52:54:00:00:00:01", Hostname: "x", Labels: map[string]string{"rack": "r1"}})
	a2 := script(schema.Machine{MAC: "52:54:00:00:00:01", Hostname: "y", Labels: map[string]string{"rack": "r1", "zone": "z"}})
	if a1 != a2 || !strings.Contains(a1, " m=52:54:00:00:00:01 g=a r=r1\n") {
		t.Errorf("group a: %q then %q", a1, a2)
	}
	if g := snap.Lookup(&schema.Machine{MAC: "52:54:00:00:00:01", Labels: map[string]string{"rack": "r1"}}); g.script[0].Load() == nil {
		t.Errorf("group a's script was not kept")
	}
	b1 := script(schema.Machine{MAC: "52:54:00:00:00:02", Hostname: "x"})
	b2 := script(schema.Machine{MAC: "52:54:00:00:00:02", Hostname: "y"})
	if !strings.Contains(b1, " h=x\n") || !strings.Contains(b2, " h=y\n") {
		t.Errorf("group b reused a script across hostnames: %q, %q", b1, b2)
	}
}

func TestMayServe(t *testing.T) {
	macOnly := mustLoad(t, fstest.MapFS{
		"profiles/p.yaml":  {Data: []byte(testProfile)},
		"groups/a.yaml":    {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
		"groups/arm.yaml":  {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:02\", arch: arm64}\n")},
		"groups/host.yaml": {Data: []byte("profile: p\nselector: {hostname: h1, arch: x86_64}\n")},
	})
	for _, c := range []struct {
		mac, arch string
		want      bool
	}{
		{"52:54:00:00:00:01", "x86_64", true}, // its MAC group
		{"52:54:00:00:00:02", "arm64", true},  // MAC and arch agree
		{"52:54:00:00:00:02", "", true},       // arch not known yet
		{"52:54:00:00:00:03", "x86_64", true}, // the hostname group may match after iPXE
		{"52:54:00:00:00:03", "arm64", false}, // nothing for an unknown arm64 machine
		{"52:54:00:00:00:03", "", true},       // arch unknown: the hostname group may match
	} {
		if got := macOnly.MayServe(c.mac, c.arch); got != c.want {
			t.Errorf("MayServe(%s, %q) = %v", c.mac, c.arch, got)
		}
	}
	strict := mustLoad(t, fstest.MapFS{
		"profiles/p.yaml": {Data: []byte(testProfile)},
		"groups/a.yaml":   {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
	})
	if strict.MayServe("52:54:00:00:00:09", "x86_64") || strict.MayServe("52:54:00:00:00:09", "") {
		t.Error("a machine no MAC group names is offered with no other groups")
	}
}

// A config is rendered once per group when its template reads only what
// the selector fixes, and per machine otherwise.
func TestConfigReuseFollowsTheSelector(t *testing.T) {
	snap := mustLoad(t, fstest.MapFS{
		"profiles/p.yaml":  {Data: []byte("kernel: /assets/k\nconfig: {template: c.yaml, type: raw}\n")},
		"profiles/q.yaml":  {Data: []byte("kernel: /assets/k\nconfig: {template: h.yaml, type: raw}\n")},
		"templates/c.yaml": {Data: []byte("mac: {{ .MAC }}\ngroup: {{ .Group }}\n")},
		"templates/h.yaml": {Data: []byte("host: {{ .Hostname }}\n")},
		"groups/a.yaml":    {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
		"groups/b.yaml":    {Data: []byte("profile: q\nselector: {mac: \"52:54:00:00:00:02\"}\n")},
	})
	config := func(m schema.Machine) string {
		var b strings.Builder
		g := snap.Lookup(&m)
		if err := snap.WriteConfig(&b, g, &m); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a := schema.Machine{MAC: "52:54:00:00:00:01", Hostname: "x"}
	if got := config(a); got != "mac: 52:54:00:00:00:01\ngroup: a\n" || snap.Lookup(&a).config[0].Load() == nil {
		t.Errorf("group a: %q, kept %v", got, snap.Lookup(&a).config[0].Load() != nil)
	}
	if got := config(a); got != "mac: 52:54:00:00:00:01\ngroup: a\n" {
		t.Errorf("group a, reused: %q", got)
	}
	if h1, h2 := config(schema.Machine{MAC: "52:54:00:00:00:02", Hostname: "x"}), config(schema.Machine{MAC: "52:54:00:00:00:02", Hostname: "y"}); h1 != "host: x\n" || h2 != "host: y\n" {
		t.Errorf("group b reused a config across hostnames: %q, %q", h1, h2)
	}
}
