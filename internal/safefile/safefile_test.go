package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"golang.org/x/sys/unix"
)

func TestOpenRegularFile(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644))
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()
	for name, open := range map[string]func() (*os.File, error){
		"Open":   func() (*os.File, error) { return Open(filepath.Join(dir, "f")) },
		"OpenIn": func() (*os.File, error) { return OpenIn(root, "f") },
	} {
		f, err := open()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		must(t, err)
		if fl&unix.O_NONBLOCK != 0 {
			t.Errorf("%s: O_NONBLOCK left on a regular file", name)
		}
		if fd, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || fd&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: no FD_CLOEXEC (%v)", name, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "data" {
			t.Errorf("%s: read %q, %v", name, b, err)
		}
	}
}

// Each special file is refused at once, with what it is.
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	fifotest.Mkfifo(t, filepath.Join(dir, "fifo"))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(t, err)
	defer ln.Close()
	must(t, os.Symlink("fifo", filepath.Join(dir, "link-to-fifo")))
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()

	cases := []struct{ path, want string }{
		{filepath.Join(dir, "fifo"), "is a named pipe (FIFO), not a regular file"},
		{filepath.Join(dir, "link-to-fifo"), "is a named pipe (FIFO), not a regular file"},
		{filepath.Join(dir, "sub"), "is a directory, not a regular file"},
		{filepath.Join(dir, "sock"), "is a socket, not a regular file"},
		{"/dev/null", "is a character device, not a regular file"},
	}
	for _, c := range cases {
		fifotest.Returns(t, c.path, func() {
			f, err := Open(c.path)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, ErrNotRegular) || err.Error() != "open "+c.path+": "+c.want {
				t.Errorf("Open(%s) = %v, want %q", c.path, err, c.want)
			}
			if _, err := ReadFile(c.path, 100); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadFile(%s) = %v", c.path, err)
			}
			if strings.HasPrefix(c.path, dir) {
				rel, _ := filepath.Rel(dir, c.path)
				if f, err := OpenIn(root, rel); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.want) {
					if err == nil {
						f.Close()
					}
					t.Errorf("OpenIn(%s) = %v", rel, err)
				}
			}
		})
	}
}

// The root's confinement is root.Open's: nothing outside, symlinks included.
func TestOpenInKeepsConfinement(t *testing.T) {
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644))
	dir := t.TempDir()
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "out")))
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()
	for _, name := range []string{"out", "../" + filepath.Base(outside) + "/secret", "/etc/passwd"} {
		if f, err := OpenIn(root, name); err == nil {
			f.Close()
			t.Errorf("OpenIn(%q) opened a file outside the root", name)
		}
	}
}

func TestReadFileCap(t *testing.T) {
	name := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(name, []byte("0123456789"), 0o644))
	if b, err := ReadFile(name, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("at the cap: %q, %v", b, err)
	}
	_, err := ReadFile(name, 9)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "10 bytes, over the 9-byte limit") {
		t.Errorf("over the cap: %v", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing"), 9); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestOpenRootRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifotest.Mkfifo(t, filepath.Join(dir, "fifo"))
	fifotest.Returns(t, "OpenRoot", func() {
		if r, err := OpenRoot(filepath.Join(dir, "fifo")); err == nil || !strings.Contains(err.Error(), "is a named pipe (FIFO), not a directory") {
			if err == nil {
				r.Close()
			}
			t.Errorf("OpenRoot(fifo) = %v", err)
		}
	})
	r, err := OpenRoot(dir)
	must(t, err)
	r.Close()
}

func TestFS(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "keys"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "keys/k.asc"), []byte("key"), 0o644))
	fifotest.Mkfifo(t, filepath.Join(dir, "keys/fifo.asc"))
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()
	fsys := FS(root)
	fifotest.Returns(t, "fs.ReadFile", func() {
		if b, err := fs.ReadFile(fsys, "keys/k.asc"); err != nil || string(b) != "key" {
			t.Errorf("regular file: %q, %v", b, err)
		}
		if _, err := fs.ReadFile(fsys, "keys/fifo.asc"); !errors.Is(err, ErrNotRegular) {
			t.Errorf("FIFO: %v", err)
		}
		if es, err := fs.ReadDir(fsys, "keys"); err != nil || len(es) != 2 || es[0].Name() != "fifo.asc" {
			t.Errorf("ReadDir: %v, %v", es, err)
		}
		if _, err := fs.ReadDir(fsys, "keys/fifo.asc"); err == nil {
			t.Error("ReadDir of a FIFO succeeded")
		}
		f, err := fsys.Open("keys")
		if err != nil {
			t.Fatalf("a directory must still open: %v", err)
		}
		f.Close()
		if _, err := fsys.Open("../x"); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("invalid path: %v", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A listing is read in batches and stops past its bound, instead of
// holding the whole directory before anyone counts it.
func TestReadDirBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range 2500 { // more than one batch
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := readDir(f, 2000); err == nil || !strings.Contains(err.Error(), "more than 2000 entries") {
		t.Errorf("over the bound: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	es, err := fs.ReadDir(FS(root), ".")
	if err != nil || len(es) != 2500 || es[0].Name() != "f0000" || es[2499].Name() != "f2499" {
		t.Errorf("under the bound: %d entries, %v", len(es), err)
	}
}

func TestServedName(t *testing.T) {
	for name, want := range map[string]bool{
		"vmlinuz": true, "quickstart/initrd.cpio.gz": true, "a/b.c/d": true,
		".": false, "": false, ".partial/x": false, "a/.partial/x": false, ".x": false, "../x": false, "a//b": false, "/a": false,
	} {
		if got := ServedName(name); got != want {
			t.Errorf("ServedName(%q) = %v, want %v", name, got, want)
		}
	}
}
