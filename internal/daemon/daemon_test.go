package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/logtest"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, name, body string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(name), 0o755))
	must(t, os.WriteFile(name, []byte(body), 0o644))
}

// fleet is a valid tree of one machine, as a directory source.
func fleet(t testing.TB) *source.Dir {
	t.Helper()
	return fleetOf(t, map[string]string{
		"profiles/p.yaml": "kernel: /assets/k\n",
		"groups/g.yaml":   "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	})
}

// fleetOf is a directory source holding files.
func fleetOf(t testing.TB, files map[string]string) *source.Dir {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	d, err := source.NewDir(dir, source.DirOptions{Poll: time.Hour})
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// ipxeDir holds the binaries ProxyDHCP hands out.
func ipxeDir(t testing.TB) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "undionly.kpxe"), "bios")
	writeFile(t, filepath.Join(dir, "snponly.efi"), "efi")
	return dir
}

func udpConn(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

type running struct {
	url  string
	logs *logtest.Buffer
	done chan error
	stop context.CancelFunc
}

// start runs cfg with HTTP on a free loopback port until the test ends,
// and waits until it serves the tree.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	logs := &logtest.Buffer{}
	cfg.HTTPListener = ln
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.FailGrace == 0 {
		cfg.FailGrace = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{url: "http://" + ln.Addr().String(), logs: logs, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- cfg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of cancel")
		}
	})
	r.until(t, 10*time.Second, "/readyz is 200", func() bool { code, _ := r.get("/readyz"); return code == 200 })
	return r
}

func (r *running) get(path string) (int, string) {
	resp, err := http.Get(r.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s; log:\n%s", d, what, r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runError waits for Run to end by itself and returns its error.
func (r *running) runError(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Run still running 10 s after a component stopped; log:\n%s", r.logs)
		return nil
	}
}

// stops checks that after kill, /readyz fails naming name within a
// second, and Run then ends with an error naming it.
func stops(t *testing.T, r *running, name string, kill func()) {
	t.Helper()
	kill()
	var body string
	r.until(t, time.Second, "/readyz answers 503 naming "+name, func() bool {
		var code int
		code, body = r.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, name+" stopped")
	})
	err := r.runError(t)
	if err == nil || !strings.Contains(err.Error(), name+" stopped") {
		t.Errorf("Run = %v, want an error naming %s (readyz said %q)", err, name, body)
	}
}

// A ProxyDHCP socket that dies (closed under the reader) is reported
// and ends the daemon; on today's code the reader's goroutine just
// returned and /readyz kept saying ok.
func TestProxyDHCPThatStopsEndsRun(t *testing.T) {
	for _, port := range []string{"67", "4011"} {
		t.Run(port, func(t *testing.T) {
			tl, err := tftpserver.Listen("127.0.0.1:0")
			must(t, err)
			cfg := Config{Source: "fleet", Tree: fleet(t), ProxyDHCP: true, Interface: "lo",
				DHCPConn: udpConn(t), BootServerConn: udpConn(t), TFTPListener: tl,
				IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"}
			r := start(t, cfg)
			conn := cfg.DHCPConn
			if port == "4011" {
				conn = cfg.BootServerConn
			}
			stops(t, r, "proxydhcp:"+port, func() { conn.Close() })
		})
	}
}

func TestTFTPThatStopsEndsRun(t *testing.T) {
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	r := start(t, Config{Source: "fleet", Tree: fleet(t), TFTPListener: tl, IPXEDir: ipxeDir(t)})
	stops(t, r, "tftp", func() { tl.Reads.Close() })
}

// brokenTree serves one revision, then its Run fails (a state dir gone
// read-only, a clone that cannot be written).
type brokenTree struct {
	*source.Dir
	fail chan struct{}
}

func (b brokenTree) Run(ctx context.Context, emit func(source.Revision)) error {
	rev, err := b.Once()
	if err != nil {
		return err
	}
	emit(rev)
	select {
	case <-b.fail:
		return errors.New("state dir: read-only file system")
	case <-ctx.Done():
		return nil
	}
}

func TestSourceThatFailsEndsRun(t *testing.T) {
	tree := brokenTree{Dir: fleet(t), fail: make(chan struct{})}
	r := start(t, Config{Source: "fleet", Tree: tree})
	stops(t, r, "source", func() { close(tree.fail) })
	if !strings.Contains(r.logs.String(), "read-only file system") {
		t.Errorf("the source's error is not logged:\n%s", r.logs)
	}
}

// A clean shutdown is no failure; each listener is logged once it is up.
func TestCleanShutdownAndStartupLog(t *testing.T) {
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	r := start(t, Config{Source: "fleet", Tree: fleet(t), TFTPListener: tl, IPXEDir: ipxeDir(t)})
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
		r.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
	logs := r.logs.String()
	for _, want := range []string{
		"msg=listening component=http addr=" + strings.TrimPrefix(r.url, "http://") + "\n",
		"msg=listening component=tftp addr=" + tl.LocalAddr().String() + "\n",
	} {
		if strings.Count(logs, want) != 1 {
			t.Errorf("log lacks %q once:\n%s", want, logs)
		}
	}
	if i, j := strings.Index(logs, "component=http"), strings.Index(logs, "pxeops serving"); i < 0 || j < i {
		t.Errorf("listeners are not logged before serving starts:\n%s", logs)
	}
}

// With --interface, TFTP binds the interface's address, not every one.
func TestTFTPBindsTheInterfaceAddress(t *testing.T) {
	r := start(t, Config{Source: "fleet", Tree: fleet(t), Interface: "lo", TFTPAddr: ":0", IPXEDir: ipxeDir(t)})
	if !strings.Contains(r.logs.String(), "msg=listening component=tftp addr=127.0.0.1:") {
		t.Errorf("TFTP not bound to lo's address:\n%s", r.logs)
	}
}

// A listener that cannot be bound ends Run before anything serves, naming
// the field; what was bound already is closed again.
func TestBindFailureNamesTheField(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer taken.Close()
	cfg := Config{Source: "fleet", Tree: fleet(t), HTTPAddr: taken.Addr().String()}
	err = cfg.Run(context.Background())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "HTTPAddr" || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run on a taken port = %v, want a FieldError for HTTPAddr", err)
	}
}
