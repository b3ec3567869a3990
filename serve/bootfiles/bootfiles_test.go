package bootfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pxeops/pxeops/internal/safefile"
)

// loaders writes four distinct binaries and loads them.
func loaders(t *testing.T) (*Loaders, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	want := map[string][]byte{}
	var ls []Loader
	for _, arch := range []string{X86_64, ARM64} {
		ld := Loader{Arch: arch}
		for i, p := range []*string{&ld.Shim, &ld.GRUB} {
			name := names[arch][i]
			*p = filepath.Join(dir, name+".signed")
			want[name] = []byte("MZ " + name)
			if err := os.WriteFile(*p, want[name], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ls = append(ls, ld)
	}
	l, err := LoadLoaders(ls...)
	if err != nil {
		t.Fatal(err)
	}
	return l, want
}

func TestLoadLoaders(t *testing.T) {
	l, _ := loaders(t)
	if l.Shim(X86_64) != "shimx64.efi" || l.Shim(ARM64) != "shimaa64.efi" || l.Shim("riscv64") != "" {
		t.Errorf("Shim names: %q %q %q", l.Shim(X86_64), l.Shim(ARM64), l.Shim("riscv64"))
	}
	var none *Loaders
	if none.Shim(X86_64) != "" {
		t.Error("a nil Loaders has a shim")
	}
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim")
	os.WriteFile(shim, []byte("MZ"), 0o644)
	for _, c := range []struct {
		ld   Loader
		want string
	}{
		{Loader{Arch: X86_64, Shim: shim}, "both are needed"},
		{Loader{Arch: "riscv64", Shim: shim, GRUB: shim}, "no GRUB route"},
		{Loader{Arch: X86_64, Shim: shim, GRUB: filepath.Join(dir, "missing")}, "no such file"},
		{Loader{Arch: X86_64, Shim: shim, GRUB: dir}, "not a regular file"},
	} {
		if _, err := LoadLoaders(c.ld); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadLoaders(%+v) = %v, want %q", c.ld, err, c.want)
		}
	}
}

// renderer stands in for the HTTP server's /grub: it answers per MAC and
// records the requests.
type renderer struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (rd *renderer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rd.mu.Lock()
	rd.seen = append(rd.seen, r)
	rd.mu.Unlock()
	switch mac := r.URL.Query().Get("mac"); mac {
	case "52:54:00:12:34:56":
		fmt.Fprintf(w, "linux /assets/k 'arch=%s'\nboot\n", r.URL.Query().Get("arch"))
	case "52:54:00:00:00:ff":
		w.Write(bytes.Repeat([]byte("x"), maxConfig+1))
	default:
		http.Error(w, "no group matches "+mac+"\nsecond line", http.StatusNotFound)
	}
}

func read(t *testing.T, f *Files, name string) ([]byte, error) {
	t.Helper()
	r, size, err := f.Open(name, netip.MustParseAddr("10.77.0.20"))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if int64(len(b)) != size {
		t.Errorf("%s: size %d, read %d bytes", name, size, len(b))
	}
	return b, err
}

func TestFiles(t *testing.T) {
	l, bins := loaders(t)
	assets := t.TempDir()
	os.MkdirAll(filepath.Join(assets, "quickstart"), 0o755)
	os.MkdirAll(filepath.Join(assets, ".partial"), 0o755)
	os.WriteFile(filepath.Join(assets, "quickstart", "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(assets, ".partial", "vmlinuz"), []byte("unverified"), 0o644)
	root, err := safefile.OpenRoot(assets)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rd := &renderer{}
	f := &Files{Loaders: l, Assets: root, Machine: rd}

	for name, want := range bins {
		if got, err := read(t, f, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if got, err := read(t, f, "grub/grub.cfg"); err != nil || string(got) != Handover {
		t.Errorf("grub/grub.cfg: %q, %v", got, err)
	}
	if got, err := read(t, f, "assets/quickstart/vmlinuz"); err != nil || string(got) != "kernel" {
		t.Errorf("assets/quickstart/vmlinuz: %q, %v", got, err)
	}
	got, err := read(t, f, "grub/52:54:00:12:34:56-arm64.cfg")
	if err != nil || string(got) != "linux /assets/k 'arch=arm64'\nboot\n" {
		t.Errorf("the machine's config: %q, %v", got, err)
	}
	rd.mu.Lock()
	if len(rd.seen) != 1 || rd.seen[0].URL.Path != "/grub" || rd.seen[0].RemoteAddr != "10.77.0.20:0" {
		t.Errorf("renderer saw %d requests, first %+v", len(rd.seen), rd.seen)
	}
	rd.mu.Unlock()

	for _, name := range []string{"revocations_sku.efi", "revocations_sbat.efi", "shim_certificate_0.efi", "grub/x86_64-efi/command.lst", "grub/fonts/unicode.pf2"} {
		_, err := read(t, f, name)
		var a interface{ Absent() bool }
		if !errors.As(err, &a) || !a.Absent() {
			t.Errorf("%s: %v, want ErrAbsent", name, err)
		}
	}
	for _, name := range []string{"snponly.efi", "assets/.partial/vmlinuz", "assets/../etc/passwd", "assets/missing", "grubx64.efi.signed"} {
		if _, err := read(t, f, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want not exist (the directory is asked next)", name, err)
		}
	}
	if _, err := read(t, f, "grub/52:54:00:00:00:01-x86_64.cfg"); err == nil || !strings.Contains(err.Error(), "404 no group matches 52:54:00:00:00:01") || strings.Contains(err.Error(), "second line") {
		t.Errorf("unmatched machine: %v, want the renderer's first line", err)
	}
	if _, err := read(t, f, "grub/52:54:00:00:00:ff-x86_64.cfg"); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("oversized config: %v", err)
	}
}

// Over HTTP the name is what follows the last slash: shim asks for
// /loader//grubx64.efi.
func TestLoadersOverHTTP(t *testing.T) {
	l, bins := loaders(t)
	for _, path := range []string{"/loader/shimx64.efi", "/loader//grubx64.efi", "/loader//grubaa64.efi"} {
		w := httptest.NewRecorder()
		l.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		name := path[strings.LastIndexByte(path, '/')+1:]
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), bins[name]) {
			t.Errorf("%s: %d %q", path, w.Code, w.Body.Bytes())
		}
	}
	w := httptest.NewRecorder()
	l.ServeHTTP(w, httptest.NewRequest("GET", "/loader//revocations_sku.efi", nil))
	if w.Code != 404 {
		t.Errorf("revocations_sku.efi: %d, want 404", w.Code)
	}
}

// FuzzMachineConfigName: a name read is exactly the name asked for, with
// a known CPU.
func FuzzMachineConfigName(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56-x86_64.cfg", "52:54:00:12:34:56-arm64.cfg", "x86_64-efi/command.lst", "-x86_64.cfg", "a-b-arm64.cfg", "grub.cfg", "52:54:00:12:34:56-i386.cfg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		mac, arch, ok := MachineConfigName(name)
		if !ok {
			return
		}
		if mac+"-"+arch+".cfg" != name || mac == "" || (arch != X86_64 && arch != ARM64) {
			t.Fatalf("MachineConfigName(%q) = %q, %q", name, mac, arch)
		}
	})
}
