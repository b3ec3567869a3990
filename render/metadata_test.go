package render

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

var envLine = regexp.MustCompile(`^[A-Z0-9_]+=[^\n\r]*$`)

// FuzzMetadata: whatever query a machine sends, /metadata is KEY=value
// lines only, sorted, and REQUEST_RAW_QUERY gives the query back exactly
// once unescaped: a query cannot add a line or a key of its own choosing
// beyond REQUEST_QUERY_<label>.
func FuzzMetadata(f *testing.F) {
	for _, s := range []string{
		"mac=52-54-00-12-34-56&uuid=4c4c4544-0042-3510-8050-b4c04f4d3232&hostname=&serial=&arch=x86_64",
		"mac=52:54:00:00:00:01&rack=r1&zone=eu-1",
		"hostname=n1&x=%0AEVIL%3D1",
		"rack=a%5Cb",
		"",
	} {
		f.Add(s)
	}
	tree := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\n")},
		"groups/all.yaml": {Data: []byte("profile: p\nmetadata: {role: etcd, request: {query: {rack: \"fa ke\"}}}\n")},
	}
	snap, diags := Load(context.Background(), tree, Options{ServerURL: "http://pxe.test"})
	if snap == nil {
		f.Fatal(diags)
	}
	unescape := strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r")
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := ParseMachineQuery(raw)
		if err != nil {
			return
		}
		g := snap.Lookup(&m)
		var out bytes.Buffer
		if err := snap.WriteMetadata(&out, g, &m, raw); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		seenRaw := raw == ""
		for i, l := range lines {
			if !envLine.MatchString(l) {
				t.Fatalf("line %q of %q", l, out.String())
			}
			if key := func(l string) string { k, _, _ := strings.Cut(l, "="); return k }; i > 0 && key(lines[i-1]) >= key(l) {
				t.Fatalf("not sorted: %q before %q", lines[i-1], l)
			}
			if v, ok := strings.CutPrefix(l, "REQUEST_RAW_QUERY="); ok {
				seenRaw = true
				if unescape.Replace(v) != raw {
					t.Fatalf("raw query %q reads back as %q", raw, unescape.Replace(v))
				}
			}
			if l == "REQUEST_QUERY_RACK=fa ke" {
				t.Fatalf("metadata's request survived: %q", out.String())
			}
		}
		if !seenRaw {
			t.Fatalf("no REQUEST_RAW_QUERY for %q", raw)
		}
	})
}
