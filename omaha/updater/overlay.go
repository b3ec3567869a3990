package updater

import (
	"bytes"
	"io/fs"
	"path"
	"time"
)

// overlay is fsys with one file's content replaced, to load the tree an
// edit would make before committing it.
type overlay struct {
	fs.FS
	name string
	data []byte
}

func (o overlay) Open(name string) (fs.File, error) {
	if name != o.name {
		return o.FS.Open(name)
	}
	return &memFile{Reader: bytes.NewReader(o.data), name: path.Base(name), size: int64(len(o.data))}, nil
}

// ReadDir passes through: without it fs.ReadDir falls back to opening
// the directory, which the sources' trees do not support, and the edited
// tree would load as an empty one.
func (o overlay) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(o.FS, name) }

var _ fs.ReadDirFS = overlay{}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return f.name }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o644 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }
