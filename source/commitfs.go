package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/schema"
)

// commitTree reads files of one commit's tree, not of a work tree that
// could change under it. go-git's object storage is not safe for
// concurrent use, so every read holds mu (one per repository).
type commitTree struct {
	mu   *sync.Mutex
	tree *object.Tree
	when time.Time
}

// snapshot reads the files the schema reads into a treeFS; other paths
// (a keyring) are read from the commit on demand. blobs carries contents
// over from the previous revision by blob hash, so an unchanged file is
// not decoded again; the returned map is this revision's.
func (c *commitTree) snapshot(blobs map[plumbing.Hash][]byte) (*treeFS, map[plumbing.Hash][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &treeFS{files: map[string]*memFile{}, dirs: map[string][]fs.DirEntry{}, disk: lockedFS{c}}
	next := map[plumbing.Hash][]byte{}
	var walk func(dir string, tree *object.Tree) error
	walk = func(dir string, tree *object.Tree) error {
		for _, e := range tree.Entries {
			rel := path.Join(dir, e.Name)
			if strings.HasPrefix(e.Name, ".") || !schema.InTree(rel) {
				continue
			}
			switch {
			case e.Mode == filemode.Dir:
				t.add(rel, c.info(e.Name, 0, true), nil)
				sub, err := tree.Tree(e.Name)
				if err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
				if err := walk(rel, sub); err != nil {
					return err
				}
			case e.Mode.IsFile():
				data, ok := blobs[e.Hash]
				if !ok {
					f, err := tree.TreeEntryFile(&e)
					if err != nil {
						return fmt.Errorf("%s: %w", rel, err)
					}
					if data, err = readBlob(f); err != nil {
						return fmt.Errorf("%s: %w", rel, err)
					}
				}
				next[e.Hash] = data
				info := c.info(e.Name, int64(len(data)), false)
				t.add(rel, info, &memFile{info: info, data: data})
			}
		}
		return nil
	}
	if err := walk(".", c.tree); err != nil {
		return nil, nil, err
	}
	// Sorted like a directory listing, not in git's tree order.
	for dir := range t.dirs {
		slices.SortFunc(t.dirs[dir], func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return t, next, nil
}

func readBlob(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, schema.MaxFileSize+1))
}

func (c *commitTree) info(name string, size int64, dir bool) fs.FileInfo {
	mode := fs.FileMode(0o444)
	if dir {
		mode = fs.ModeDir | 0o555
	}
	return fileInfo{name: name, size: size, mode: mode, mod: c.when}
}

// lockedFS opens single files of the commit, for paths outside the snapshot.
type lockedFS struct{ c *commitTree }

func (l lockedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	f, err := l.c.tree.File(name)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	data, err := readBlob(f)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	info := l.c.info(path.Base(name), int64(len(data)), false)
	return &openMemFile{memFile: &memFile{info: info, data: data}, Reader: bytes.NewReader(data)}, nil
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.mod }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }
