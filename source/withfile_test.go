package source

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/schema"
)

// dirlessFS lists directories only through ReadDir, as the sources' trees
// do: opening a directory fails.
type dirlessFS struct{ fstest.MapFS }

func (d dirlessFS) Open(name string) (fs.File, error) {
	if info, err := fs.Stat(d.MapFS, name); err == nil && info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d.MapFS.Open(name)
}

func (d dirlessFS) ReadDir(name string) ([]fs.DirEntry, error) { return d.MapFS.ReadDir(name) }

// The tree an edit would make is loaded whole, not as an empty tree.
func TestWithFileLoadsTheWholeTree(t *testing.T) {
	base := dirlessFS{fstest.MapFS{
		"images/i.yaml":   {Data: []byte("os: linux\nversion: '1'\nkernel: {url: /assets/k}\ninitrd: [{url: /assets/i}]\n")},
		"profiles/p.yaml": {Data: []byte("image: i\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\n")},
	}}
	edited := []byte("os: linux\nversion: '2'\nkernel: {url: /assets/k2}\ninitrd: [{url: /assets/i}]\n")
	tree, diags := schema.Load(context.Background(), WithFile(base, "images/i.yaml", edited), nil)
	if diags.Errors() > 0 {
		t.Fatal(diags)
	}
	if img := tree.Images["i"]; img == nil || img.Version != "2" || len(tree.Groups) != 1 {
		t.Fatalf("edited tree: images %v, groups %v", tree.Images, tree.Groups)
	}
}
