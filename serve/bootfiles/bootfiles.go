// Package bootfiles serves the GRUB route, for machines whose loader is
// shim and GRUB rather than iPXE: shim and GRUB under the names shim asks
// for, the config GRUB looks for at its prefix, which hands over to the
// machine's own, and the kernels and initrds GRUB then fetches. Debian's
// signed GRUB has no HTTP, so all of it goes over TFTP (Files); shim and
// GRUB also go over HTTP (Loaders), for UEFI HTTP boot.
package bootfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
)

// MaxLoader bounds a shim or GRUB binary read at start (Debian's are
// about 1 and 2 MiB).
const MaxLoader = 32 << 20

// maxConfig bounds a machine's GRUB config taken from the renderer: its
// kernel command line is bounded far below this already.
const maxConfig = 64 << 10

// Arch names, as the snapshot and GRUB's grub_cpu spell them.
const (
	X86_64 = "x86_64"
	ARM64  = "arm64"
)

// Loader names one architecture's shim and GRUB binaries.
type Loader struct {
	Arch       string // X86_64 or ARM64
	Shim, GRUB string // paths of the signed binaries
}

// names are what a loader is served as: shim asks for GRUB by this name,
// from the directory it was itself loaded from, which is the root.
var names = map[string][2]string{
	X86_64: {"shimx64.efi", "grubx64.efi"},
	ARM64:  {"shimaa64.efi", "grubaa64.efi"},
}

// Loaders are the shim and GRUB binaries, read once at start so that a
// package upgrade replacing them mid-boot cannot hand a machine shim of
// one version and GRUB of another.
type Loaders struct {
	files map[string][]byte
	shim  map[string]string // arch → the name shim is served as
	mod   time.Time
}

// LoaderError says which binary of a Loader cannot be used.
type LoaderError struct {
	Arch string
	GRUB bool // the GRUB binary; false: the shim
	Err  error
}

func (e *LoaderError) Error() string { return e.Arch + ": " + e.Err.Error() }
func (e *LoaderError) Unwrap() error { return e.Err }

// LoadLoaders reads each loader's binaries.
func LoadLoaders(loaders ...Loader) (*Loaders, error) {
	l := &Loaders{files: map[string][]byte{}, shim: map[string]string{}, mod: time.Now()}
	for _, ld := range loaders {
		n, ok := names[ld.Arch]
		if !ok {
			return nil, fmt.Errorf("architecture %q has no GRUB route (want %s or %s)", ld.Arch, X86_64, ARM64)
		}
		for i, path := range []string{ld.Shim, ld.GRUB} {
			if path == "" {
				return nil, &LoaderError{Arch: ld.Arch, GRUB: i == 1, Err: errors.New("shim and GRUB go together; both are needed")}
			}
			b, err := safefile.ReadFile(path, MaxLoader)
			if err != nil {
				return nil, &LoaderError{Arch: ld.Arch, GRUB: i == 1, Err: err}
			}
			l.files[n[i]] = b
		}
		l.shim[ld.Arch] = n[0]
	}
	return l, nil
}

// Shim is the name arch's shim is served as, "" when arch has no GRUB
// route. A nil *Loaders has none.
func (l *Loaders) Shim(arch string) string {
	if l == nil {
		return ""
	}
	return l.shim[arch]
}

// open returns the binary served as name.
func (l *Loaders) open(name string) ([]byte, bool) {
	if l == nil {
		return nil, false
	}
	b, ok := l.files[name]
	return b, ok
}

// ServeHTTP serves the binaries under any prefix ending in "/": shim over
// HTTP boot asks for GRUB as <its directory>//grubx64.efi, so the name is
// what follows the last slash. The caller routes that path here without
// cleaning it (a redirect to the clean path is where shim gives up).
func (l *Loaders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	b, ok := l.open(name)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/efi")
	http.ServeContent(w, r, name, l.mod, bytes.NewReader(b))
}

// ErrAbsent is what Files answers for a name firmware asks for in case it
// is there (shim's revocation lists, GRUB's module lists): the client is
// told "not found", and its Absent method tells the TFTP server that this
// is no failure to log.
var ErrAbsent error = absentError{}

type absentError struct{}

func (absentError) Error() string { return "file not found (asked for in case it exists)" }
func (absentError) Absent() bool  { return true }

// absent are the names of ErrAbsent, beside anything else under grub/.
var absent = map[string]bool{"revocations_sku.efi": true, "revocations_sbat.efi": true, "shim_certificate_0.efi": true}

// Handover is the config GRUB fetches from its prefix, the same for
// every machine: it loads the machine's own, named by what GRUB knows of
// it, and returns to the firmware when there is none.
const Handover = `# pxeops: GRUB's prefix config. Each machine's own is rendered for its
# MAC and CPU at grub/<mac>-<cpu>.cfg.
configfile /grub/${net_default_mac}-${grub_cpu}.cfg
echo "pxeops: no config for ${net_default_mac} (${grub_cpu}); see the server's log. Back to the firmware."
sleep 5
exit
`

// Files serves the GRUB route over TFTP (tftpserver.Files).
type Files struct {
	// Loaders are shim and GRUB; nil serves neither.
	Loaders *Loaders
	// Assets is the assets directory, served under assets/ as over HTTP
	// at /assets/; nil serves nothing there.
	Assets *os.Root
	// Machine answers GET /grub?mac=&arch= with the machine's GRUB
	// config, as the HTTP server does, access rule included: the same
	// answer whichever way it travels. The request's RemoteAddr is the
	// TFTP requester's.
	Machine http.Handler
}

// Open returns the file served as name (without leading slashes) to
// remote, or an error matching fs.ErrNotExist when name is not one of
// the route's.
func (f *Files) Open(name string, remote netip.Addr) (io.ReadCloser, int64, error) {
	if b, ok := f.Loaders.open(name); ok {
		return bytesFile(b)
	}
	if absent[name] {
		return nil, 0, ErrAbsent
	}
	if rest, ok := strings.CutPrefix(name, "assets/"); ok && f.Assets != nil {
		if !safefile.ServedName(rest) {
			return nil, 0, fs.ErrNotExist
		}
		file, err := safefile.OpenIn(f.Assets, rest)
		if err != nil {
			return nil, 0, fs.ErrNotExist
		}
		info, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, 0, fs.ErrNotExist
		}
		return file, info.Size(), nil
	}
	rest, ok := strings.CutPrefix(name, "grub/")
	if !ok {
		return nil, 0, fs.ErrNotExist
	}
	if rest == "grub.cfg" {
		return bytesFile([]byte(Handover))
	}
	mac, arch, ok := MachineConfigName(rest)
	if !ok || f.Machine == nil {
		return nil, 0, ErrAbsent // GRUB's command.lst, fs.lst, fonts: it carries on without
	}
	b, err := f.machine(mac, arch, remote)
	if err != nil {
		return nil, 0, err
	}
	return bytesFile(b)
}

// MachineConfigName reads "<mac>-<cpu>.cfg", the name the handover asks
// for, as GRUB spells them: 52:54:00:12:34:56-x86_64.cfg.
func MachineConfigName(name string) (mac, arch string, ok bool) {
	base, ok := strings.CutSuffix(name, ".cfg")
	i := strings.LastIndexByte(base, '-')
	if !ok || i < 0 {
		return "", "", false
	}
	mac, arch = base[:i], base[i+1:]
	if _, known := names[arch]; !known || mac == "" {
		return "", "", false
	}
	return mac, arch, true
}

// machine asks the renderer for the config of mac as remote would over
// HTTP.
func (f *Files) machine(mac, arch string, remote netip.Addr) ([]byte, error) {
	q := url.Values{"mac": {mac}, "arch": {arch}}
	r, err := http.NewRequest(http.MethodGet, "/grub?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	r.RemoteAddr = netip.AddrPortFrom(remote, 0).String()
	w := &bufferWriter{header: http.Header{}, code: http.StatusOK}
	f.Machine.ServeHTTP(w, r)
	switch {
	case w.over:
		return nil, fmt.Errorf("GRUB config for %s is over %d bytes", mac, maxConfig)
	case w.code != http.StatusOK:
		// The renderer's reason, as the HTTP client would read it.
		msg, _, _ := strings.Cut(strings.TrimSpace(w.buf.String()), "\n")
		return nil, fmt.Errorf("%s: %d %s", mac, w.code, msg)
	}
	return w.buf.Bytes(), nil
}

func bytesFile(b []byte) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// bufferWriter takes an in-process HTTP answer, up to maxConfig bytes.
type bufferWriter struct {
	header http.Header
	code   int
	wrote  bool
	buf    bytes.Buffer
	over   bool
}

func (w *bufferWriter) Header() http.Header { return w.header }

func (w *bufferWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
}

func (w *bufferWriter) Write(p []byte) (int, error) {
	w.wrote = true
	if w.buf.Len()+len(p) > maxConfig {
		w.over = true
		return 0, errors.New("answer too large")
	}
	return w.buf.Write(p)
}
