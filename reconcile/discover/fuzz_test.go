package discover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pxeops/pxeops/reconcile/discover"
	"github.com/pxeops/pxeops/schema"
)

// Whatever the recorder hands over, a machine either is refused or
// becomes a file that parses to exactly one group, selecting its MAC (and
// its arch when given) and nothing else: no value adds a key.
func FuzzContent(f *testing.F) {
	f.Add("52:54:00:aa:bb:cc", "4c4c4544-0042-3510-8050-b4c04f4d3232", "x86_64", "PXEClient:Arch:00007:UNDI:003016", "10.0.0.1", 3, true)
	f.Add("52-54-00-AA-BB-CC", "", "", "", "", 0, false)
	f.Add("52:54:00:aa:bb:cc", "", "aarch64", "HTTPClient:Arch:00016:UNDI:003001", "fd00::1", 1, true)
	f.Add("52:54:00:aa:bb:cc\nprofile: evil", "", "", "", "", 1, true)
	f.Add("52:54:00:aa:bb:cc", "", "", "a\"\nprofile: evil\n#", "", 1, true)
	f.Add("52:54:00:aa:bb:cc", "", "", "x: y", "1.2.3.4\n  arch: arm64", 1, false)
	f.Add("52:54:00:aa:bb:cc", "", "", "#:{}[]&*!|>'%@`", "::ffff:1.2.3.4", 7, true)
	f.Fuzz(func(t *testing.T, mac, uuid, arch, vendor, relay string, seen int, withProfile bool) {
		m := discover.Machine{MAC: mac, UUID: uuid, Arch: arch, VendorClass: vendor, Relay: relay, Seen: seen,
			FirstSeen: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), LastSeen: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
		n, err := discover.Normalize(m)
		if err != nil {
			return
		}
		profile := ""
		if withProfile {
			profile = "worker"
		}
		content := discover.Content(n, profile)
		var doc map[string]any
		if err := yaml.Unmarshal(content, &doc); err != nil {
			t.Fatalf("does not parse: %v\n%s", err, content)
		}
		if keys := slices.Sorted(maps.Keys(doc)); !slices.Equal(keys, []string{"description", "profile", "selector"}) || doc["profile"] != profile {
			t.Fatalf("keys %v, profile %v\n%s", keys, doc["profile"], content)
		}
		want := map[string]any{"mac": n.MAC}
		if n.Arch != "" {
			want["arch"] = n.Arch
		}
		if sel, _ := doc["selector"].(map[string]any); !maps.Equal(sel, want) {
			t.Fatalf("selector %v, want %v\n%s", doc["selector"], want, content)
		}
		// And as schema reads it, once named .yaml with a profile.
		if !withProfile {
			content = discover.Content(n, "worker")
		}
		tree, diags := schema.Load(context.Background(), fstest.MapFS{
			"profiles/worker.yaml":               {Data: []byte("kernel: /assets/linux/vmlinuz\n")},
			"groups/" + discover.FileName(n.MAC): {Data: content},
		}, nil)
		if diags.Errors() > 0 || len(tree.Groups) != 1 {
			t.Fatalf("schema: %v, %d groups\n%s", diags, len(tree.Groups), content)
		}
		for _, g := range tree.Groups {
			if g.Selector[schema.KeyMAC] != n.MAC || g.Selector[schema.KeyArch] != n.Arch || len(g.Selector) != len(want) {
				t.Fatalf("group selects %v\n%s", g.Selector, content)
			}
		}
	})
}

// Decode never panics, is bounded, and what it accepts re-encodes to
// the same list.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"machines":[{"mac":"52:54:00:00:00:01","uuid":"4c4c4544-0042-3510-8050-b4c04f4d3232","arch":"x86_64","vendor_class":"PXEClient:Arch:00007:UNDI:003016","relay":"10.0.0.1","first_seen":"2026-12-01T10:00:00Z","last_seen":"2026-12-01T10:05:00Z","seen":3}]}`))
	f.Add([]byte(`{"machines":[]}`))
	f.Add([]byte(`{"machines":null}`))
	f.Add([]byte(`{"machines":[{"mac":"x","extra":1}]}`))
	f.Add([]byte(`{"machines":[]} {}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := discover.Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(ms) > discover.MaxMachines {
			t.Fatalf("%d machines", len(ms))
		}
		out, err := json.Marshal(discover.List{Machines: ms})
		if err != nil {
			return // a time json cannot write back (year outside 0-9999)
		}
		again, err := discover.Decode(bytes.NewReader(out))
		if err != nil || len(again) != len(ms) {
			t.Fatalf("re-decoding %s: %v, %d machines, want %d", out, err, len(again), len(ms))
		}
	})
}
