package source

import (
	"bytes"
	"io/fs"
	"path"
	"slices"

	"github.com/pxeops/pxeops/schema"
)

// treeFS is one state of a directory tree as a scan saw it: the files the
// schema reads (schema.InTree) held in memory, so a load sees one
// consistent tree however the disk changes meanwhile, and files that did
// not change since the previous scan are not read again. Anything else
// (a keyring named in pxeops.yaml) is read from disk when asked for.
type treeFS struct {
	files map[string]*memFile
	dirs  map[string][]fs.DirEntry
	disk  fs.FS
}

type memFile struct {
	info fs.FileInfo
	key  statKey
	data []byte
	err  error // what opening it gives instead: a named pipe, a device
}

// statKey identifies a file's content as well as stat can.
type statKey struct {
	size, mtime int64
	ino, dev    uint64
}

func (t *treeFS) Open(name string) (fs.File, error) {
	if f, ok := t.files[name]; ok {
		if f.err != nil {
			return nil, f.err
		}
		return &openMemFile{memFile: f, Reader: bytes.NewReader(f.data)}, nil
	}
	if schema.InTree(name) {
		if _, isDir := t.dirs[name]; !isDir {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	return t.disk.Open(name)
}

func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if es, ok := t.dirs[name]; ok {
		return slices.Clone(es), nil // callers may edit the slice
	}
	if schema.InTree(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return fs.ReadDir(t.disk, name)
}

type openMemFile struct {
	*memFile
	*bytes.Reader
}

func (f *openMemFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openMemFile) Close() error               { return nil }

// add records an entry of the tree as the scan found it.
func (t *treeFS) add(rel string, info fs.FileInfo, f *memFile) {
	if parent := path.Dir(rel); schema.InTree(parent) {
		t.dirs[parent] = append(t.dirs[parent], fs.FileInfoToDirEntry(info))
	}
	switch {
	case info.IsDir():
		if t.dirs[rel] == nil {
			t.dirs[rel] = []fs.DirEntry{}
		}
	case f != nil:
		t.files[rel] = f
	}
}

var _ fs.ReadDirFS = (*treeFS)(nil)

// WithFile is fsys with the file name holding data instead, to load the
// tree an edit would make before committing it (the updater).
func WithFile(fsys fs.FS, name string, data []byte) fs.FS {
	return withFile{FS: fsys, name: name, f: &memFile{info: fileInfo{name: path.Base(name), size: int64(len(data)), mode: 0o444}, data: data}}
}

type withFile struct {
	fs.FS
	name string
	f    *memFile
}

func (w withFile) Open(name string) (fs.File, error) {
	if name != w.name {
		return w.FS.Open(name)
	}
	return &openMemFile{memFile: w.f, Reader: bytes.NewReader(w.f.data)}, nil
}

// ReadDir passes through: without it fs.ReadDir falls back to opening
// the directory, which the sources' trees do not support, and the edited
// tree would load as an empty one.
func (w withFile) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(w.FS, name) }

var _ fs.ReadDirFS = withFile{}
