package render

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/gentree"
	"github.com/pxeops/pxeops/schema"
)

// A load with the daemon's cache gives exactly what a load without one
// gives, through a random walk of edits: valid and broken files, changed
// profiles, templates and images, deletions and additions.
func TestCachedLoadEqualsFreshLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	fsys := mapFS(gentree.Files(60, 5))
	cache := schema.NewCache()
	edits := []func(){
		func() { // a group moves to another profile
			i := rng.IntN(60)
			fsys[fmt.Sprintf("groups/node%05d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
				"profile: p%03d\nselector:\n  mac: %s\nmetadata:\n  hostname: h%d\n", rng.IntN(5), gentree.MAC(i), rng.IntN(3)))}
		},
		func() { // a group loses the metadata its template needs
			i := rng.IntN(60)
			fsys[fmt.Sprintf("groups/node%05d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("profile: p000\nselector:\n  mac: %s\n", gentree.MAC(i)))}
		},
		func() { // a broken file
			fsys[fmt.Sprintf("groups/node%05d.yaml", rng.IntN(60))] = &fstest.MapFile{Data: []byte("profile: [\n")}
		},
		func() { delete(fsys, fmt.Sprintf("groups/node%05d.yaml", rng.IntN(60))) },
		func() { // a profile's argument changes
			p := rng.IntN(5)
			fsys[fmt.Sprintf("profiles/p%03d.yaml", p)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
				"image: flatcar-stable\nargs: [\"x={{ .Metadata.hostname }}\", v%d]\nconfig: {template: node.ign.yaml, type: ignition}\n", rng.IntN(4)))}
		},
		func() { // the template starts or stops needing a key
			keys := []string{"hostname", "rack", "role"}
			fsys["templates/node.ign.yaml"] = &fstest.MapFile{Data: []byte("ignition: {version: 3.4.0}\nx: \"{{ .Metadata." + keys[rng.IntN(3)] + " }}\"\n")}
		},
		func() { // the image's version changes, or it breaks
			v := []string{"1.0.0", "2.0.0", "bad version"}[rng.IntN(3)]
			fsys["images/flatcar-stable.yaml"] = &fstest.MapFile{Data: []byte("os: flatcar\nchannel: stable\nversion: " + v + "\nkernel: {url: /assets/k}\ninitrd: [{url: /assets/i}]\n")}
		},
		func() { // two groups collide
			fsys["groups/dup.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("profile: p001\nselector:\n  mac: %s\nmetadata: {hostname: d, rack: r, role: x}\n", gentree.MAC(rng.IntN(60))))}
		},
	}
	opts := Options{ServerURL: "http://pxe.test"}
	for step := range 300 {
		edits[rng.IntN(len(edits))]()
		cachedOpts := opts
		cachedOpts.Cache = cache
		fresh, freshDiags := Load(context.Background(), fsys, opts)
		cached, cachedDiags := Load(context.Background(), fsys, cachedOpts)
		if !slices.Equal(freshDiags, cachedDiags) {
			t.Fatalf("step %d: diagnostics differ\nfresh:  %v\ncached: %v", step, freshDiags, cachedDiags)
		}
		if (fresh == nil) != (cached == nil) {
			t.Fatalf("step %d: fresh valid %v, cached valid %v", step, fresh != nil, cached != nil)
		}
		if fresh != nil && fresh.Digest != cached.Digest {
			t.Fatalf("step %d: digests differ: %s vs %s", step, fresh.Digest, cached.Digest)
		}
	}
}
