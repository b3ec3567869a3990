// Package safefile opens files named by outside input (requests, config
// trees, flags) for reading without ever blocking: a named pipe, a device
// or a socket where a file was expected is refused with an error saying
// what it is, instead of parking a goroutine, a thread and a descriptor
// in open(2) or read(2) until a writer comes.
//
// A file is opened with O_NONBLOCK, so open returns at once whatever it
// is; the open descriptor is then fstat-ed (no race with a rename in
// between) and anything but a regular file is closed and refused.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// ErrNotRegular is wrapped by every refusal of something that is not a
// regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by ReadFile's refusal of a file over its cap.
var ErrTooLarge = errors.New("file too large")

// MaxKeySize caps keys, keyrings, tokens and secrets: all small, so a
// bigger file is the wrong path.
const MaxKeySize = 1 << 20

// notRegular says what a file is instead of a regular one.
type notRegular struct{ mode fs.FileMode }

func (e notRegular) Error() string        { return "is a " + Kind(e.mode) + ", not a regular file" }
func (e notRegular) Is(target error) bool { return target == ErrNotRegular }

// Kind names the type of a file mode, for errors.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file"
}

// CheckMode refuses a mode that is not a regular file's, as an
// *fs.PathError naming name. For callers that already stat-ed a file and
// need not open it to know (opening some devices has side effects).
func CheckMode(name string, m fs.FileMode) error {
	if m.IsRegular() {
		return nil
	}
	return &fs.PathError{Op: "open", Path: name, Err: notRegular{m}}
}

// Open opens the regular file name for reading.
func Open(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, socketErr(err, name, func() (fs.FileInfo, error) { return os.Stat(name) })
	}
	return regular(f, name)
}

// OpenIn opens the regular file name inside root for reading; root's
// confinement applies exactly as to root.Open.
func OpenIn(root *os.Root, name string) (*os.File, error) {
	return openIn(root, name, false)
}

func openIn(root *os.Root, name string, dirOK bool) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, socketErr(err, name, func() (fs.FileInfo, error) { return root.Stat(name) })
	}
	if dirOK {
		if info, err := f.Stat(); err == nil && info.IsDir() {
			return f, nil
		}
	}
	return regular(f, name)
}

// ReadFile reads the regular file name whole, refusing one over max
// bytes without reading it.
func ReadFile(name string, max int64) ([]byte, error) {
	f, err := Open(name)
	if err != nil {
		return nil, err
	}
	return readCapped(f, name, max)
}

// ReadFileIn is ReadFile for the file name inside root.
func ReadFileIn(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := OpenIn(root, name)
	if err != nil {
		return nil, err
	}
	return readCapped(f, name, max)
}

// readCapped reads f whole and closes it.
func readCapped(f *os.File, name string, max int64) ([]byte, error) {
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > max {
		return nil, tooLarge(name, fmt.Sprintf("%d bytes", info.Size()), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, tooLarge(name, "grew while read", max)
	}
	return data, nil
}

func tooLarge(name, what string, max int64) error {
	return &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: %s, over the %d-byte limit", ErrTooLarge, what, max)}
}

// OpenRoot opens the directory dir as an *os.Root. os.OpenRoot opens it
// without O_NONBLOCK, which waits forever on a named pipe; a stat first
// refuses anything but a directory.
func OpenRoot(dir string) (*os.Root, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fmt.Errorf("is a %s, not a directory", Kind(info.Mode()))}
	}
	return os.OpenRoot(dir)
}

// regular keeps f if it is a regular file. O_NONBLOCK, which only
// mattered for the open, is cleared, so reads and sendfile behave as on
// any file.
func regular(f *os.File, name string) (*os.File, error) {
	info, err := f.Stat()
	if err == nil {
		err = CheckMode(name, info.Mode())
	}
	if err == nil {
		err = setBlocking(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// socketErr names a Unix socket, which open(2) refuses with ENXIO,
// instead of reporting "no such device or address".
func socketErr(err error, name string, stat func() (fs.FileInfo, error)) error {
	if !errors.Is(err, syscall.ENXIO) {
		return err
	}
	if info, serr := stat(); serr == nil && info.Mode()&fs.ModeSocket != 0 {
		return CheckMode(name, info.Mode())
	}
	return err
}

// FS is root.FS() with every open under OpenIn's rules: directories
// still open (fs.FS needs them), anything else that is not a regular file
// is refused, and ReadDir never waits on something that stopped being a
// directory since it was stat-ed.
func FS(root *os.Root) fs.FS { return rootFS{root} }

type rootFS struct{ root *os.Root }

func (r rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return openIn(r.root, name, true)
}

func (r rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	f, err := r.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := readDir(f, MaxDirEntries)
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return es, err
}

// MaxDirEntries bounds one directory listing: past it ReadDir stops
// reading and fails, rather than holding a directory of millions of
// entries in memory before any caller could count them.
const MaxDirEntries = 500_000

// readDir reads f's entries in batches, failing once there are more
// than max.
func readDir(f interface {
	ReadDir(int) ([]fs.DirEntry, error)
	Name() string
}, max int) ([]fs.DirEntry, error) {
	var es []fs.DirEntry
	for {
		batch, err := f.ReadDir(1024)
		es = append(es, batch...)
		if len(es) > max {
			return nil, fmt.Errorf("%s: more than %d entries", f.Name(), max)
		}
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			return es, nil
		}
		if err != nil {
			return es, err
		}
	}
}

func (r rootFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	return r.root.Stat(name)
}

var (
	_ fs.ReadDirFS = rootFS{}
	_ fs.StatFS    = rootFS{}
)

// ServedName reports whether name, relative to a served directory, may
// be served: a valid path with no component starting with a dot. The
// updater writes unverified downloads under .partial/ until their
// signatures check out, and dot files are nobody's boot files.
func ServedName(name string) bool {
	return fs.ValidPath(name) && name != "." && !strings.HasPrefix(name, ".") && !strings.Contains(name, "/.")
}
