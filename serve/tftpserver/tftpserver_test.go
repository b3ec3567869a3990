package tftpserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"
)

func serve(t *testing.T) (addr string, dir string, s *Server) {
	t.Helper()
	return serveWith(t, nil, nil)
}

// serveWith is serve with a logger and changes to the server (its
// limits, its Files) made before it serves.
func serveWith(t *testing.T, log *slog.Logger, setup func(*Server)) (addr string, dir string, s *Server) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "ipxe")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.MkdirAll(filepath.Join(base, "ipxe-private"), 0o755)
	big := make([]byte, 300_001)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "ipxe.efi"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "snp.efi"), []byte("arm64"), 0o644)
	os.WriteFile(filepath.Join(base, "ipxe-private", "secret"), []byte("secret"), 0o644)
	os.Symlink("../ipxe-private/secret", filepath.Join(dir, "escape"))
	s, err := New(dir, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	conn, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(conn)
	t.Cleanup(s.Shutdown)
	return conn.LocalAddr().String(), dir, s
}

func fetch(t *testing.T, addr, name string, blksize int) ([]byte, int64, error) {
	t.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(2)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	size, _ := wt.(tftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	_, err = wt.WriteTo(&buf)
	return buf.Bytes(), size, err
}

// request sends one packet from a fresh socket and returns the socket
// with the server's first answer and where it came from (the transfer's
// port, for a read).
func request(t *testing.T, addr string, packet []byte) (*net.UDPConn, []byte, *net.UDPAddr) {
	t.Helper()
	server, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	answer, from := ask(t, conn, server, packet)
	return conn, answer, from
}

// ask sends packet to server from conn and returns the first answer.
func ask(t *testing.T, conn *net.UDPConn, server *net.UDPAddr, packet []byte) ([]byte, *net.UDPAddr) {
	t.Helper()
	conn.WriteToUDP(packet, server)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", packet[:min(len(packet), 40)], err)
	}
	return buf[:n], from
}

// tftpError is an ERROR packet's code and message, or ok false.
func tftpError(p []byte) (code uint16, msg string, ok bool) {
	if len(p) < 5 || binary.BigEndian.Uint16(p) != 5 {
		return 0, "", false
	}
	return binary.BigEndian.Uint16(p[2:]), strings.TrimSuffix(string(p[4:]), "\x00"), true
}

// waitFor polls a metric until it reads want or 5 s pass (the server
// counts a transfer when its last packet arrives, after the client is
// done), and returns what it read last.
func waitFor(get func() float64, want float64) float64 {
	deadline := time.Now().Add(5 * time.Second)
	for get() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return get()
}

func TestServesFilesWithBlksizeAndTsize(t *testing.T) {
	addr, dir, s := serve(t)
	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	for _, blk := range []int{0, 512, 1468} {
		got, size, err := fetch(t, addr, "ipxe.efi", blk)
		if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
			t.Errorf("blksize %d: %d bytes, tsize %d, %v; want %d bytes", blk, len(got), size, err, len(want))
		}
	}
	if got, _, err := fetch(t, addr, "sub/snp.efi", 0); err != nil || string(got) != "arm64" {
		t.Errorf("file in a subdirectory: %q %v", got, err)
	}
	success := func() float64 { return testutil.ToFloat64(s.metrics.transfers.WithLabelValues("success")) }
	if n := waitFor(success, 4); n != 4 {
		t.Errorf("successful transfers counted: %v, want 4", n)
	}
	if n := testutil.ToFloat64(s.metrics.bytes); n != float64(3*len(want)+5) {
		t.Errorf("bytes counted: %v", n)
	}
}

// curl's TFTP client is a real peer, independent of pin/tftp.
func TestCurlPeer(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	addr, dir, _ := serve(t)
	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	for _, blk := range []string{"512", "1468"} {
		got, err := exec.Command("curl", "-sS", "--tftp-blksize", blk, "tftp://"+addr+"/ipxe.efi").Output()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("curl blksize %s: %d bytes, %v", blk, len(got), err)
		}
	}
}

func TestRefusesNamesOutsideTheRoot(t *testing.T) {
	addr, _, _ := serve(t)
	for _, name := range []string{"../ipxe-private/secret", "/etc/passwd", "escape", "sub\\snp.efi", "sub", "missing.efi", "./ipxe.efi"} {
		if got, _, err := fetch(t, addr, name, 0); err == nil {
			t.Errorf("%q served %q", name, got)
		}
	}
}

// A write request is steered away from pin/tftp and refused with error
// 2, access violation; nothing is written.
func TestWritesAreRefused(t *testing.T) {
	addr, dir, _ := serve(t)
	_, answer, _ := request(t, addr, []byte("\x00\x02new.efi\x00octet\x00"))
	if len(answer) < 4 || binary.BigEndian.Uint16(answer) != 5 || binary.BigEndian.Uint16(answer[2:]) != 2 || !strings.Contains(string(answer[4:]), "read-only") {
		t.Fatalf("answer to WRQ: % x; want ERROR code 2 (access violation)", answer)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.efi")); err == nil {
		t.Error("a file was written")
	}
}

func TestNewNamesTheFix(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "none"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install ipxe") {
		t.Errorf("missing directory: %v", err)
	}
}

// FuzzResolveName: any name resolves to an error or to a relative path
// that cannot leave the root lexically (os.Root handles symlinks).
func FuzzResolveName(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "ipxe.efi", "/ipxe.efi", "../x", "a/../../b", "a\\..\\b", "x\x00y", "", ".", "a//b", "pxelinux.cfg/01-52-54-00-12-34-56"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := ResolveName(name)
		if err != nil {
			return
		}
		if !fs.ValidPath(p) || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || p == ".." || strings.HasPrefix(p, "../") {
			t.Fatalf("ResolveName(%q) = %q", name, p)
		}
	})
}

// The server acknowledges blksize 1468 (what EDK2 asks for), not a
// silent fallback to 512, and tsize with the file's size.
// It then aborts with error 8, as UEFI's size probe does: that counts as
// a probe, not a failure.
func TestNegotiatesBlksizeAndTsize(t *testing.T) {
	addr, dir, s := serve(t)
	info, _ := os.Stat(filepath.Join(dir, "ipxe.efi"))
	conn, answer, from := request(t, addr, []byte("\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00"))
	if len(answer) < 2 || binary.BigEndian.Uint16(answer) != 6 {
		t.Fatalf("answer to RRQ with options: % x; want OACK", answer)
	}
	opts := string(answer[2:])
	for _, want := range []string{"blksize\x001468\x00", "tsize\x00" + strconv.FormatInt(info.Size(), 10) + "\x00"} {
		if !strings.Contains(opts, want) {
			t.Errorf("OACK %q lacks %q", opts, want)
		}
	}
	conn.WriteToUDP(append([]byte{0, 5, 0, 8}, "TFTP Aborted\x00"...), from)
	probes := func() float64 { return testutil.ToFloat64(s.metrics.transfers.WithLabelValues("size_probe")) }
	if p, f := waitFor(probes, 1), testutil.ToFloat64(s.metrics.transfers.WithLabelValues("failure")); p != 1 || f != 0 {
		t.Errorf("size probe counted as probe %v, failure %v; want 1, 0", p, f)
	}
}

// The port is shared only within one listener: a second pxeops (or any
// other server) on the same port is told it is taken.
func TestListenRefusesATakenPort(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Reads.Close()
	if l.Writes == nil {
		t.Fatalf("no write socket: %v", l.WritesErr)
	}
	defer l.Writes.Close()
	if _, err := Listen(l.LocalAddr().String()); err == nil || !strings.Contains(err.Error(), "holds the port") {
		t.Fatalf("second Listen on %s: %v", l.LocalAddr(), err)
	}
}

// A transfer waits for its ACK in a blocking read (our pin/tftp patch),
// which the gauge shows while the ACK is held back, and gives it back
// when the transfer ends.
func TestTransfersWaitInBlockingReads(t *testing.T) {
	addr, _, s := serve(t)
	conn, block, tid := request(t, addr, []byte("\x00\x01sub/snp.efi\x00octet\x00"))
	if len(block) != 4+len("arm64") || binary.BigEndian.Uint16(block) != 3 {
		t.Fatalf("first block: % x", block)
	}
	blocking := func() float64 { return testutil.ToFloat64(s.metrics.blocking) }
	if got := blocking(); got != 1 {
		t.Fatalf("pxeops_tftp_blocking_transfers while the ACK is held back: %v, want 1", got)
	}
	conn.WriteToUDP([]byte{0, 4, 0, 1}, tid)
	if got := waitFor(blocking, 0); got != 0 {
		t.Errorf("pxeops_tftp_blocking_transfers after the last ACK: %v", got)
	}
}

// A socket closed under the server ends Serve with an error, so the
// daemon can say TFTP is down; Shutdown ends it with nil.
func TestServeReturnsWhenItsSocketCloses(t *testing.T) {
	for _, viaShutdown := range []bool{false, true} {
		s, err := New(t.TempDir(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		time.Sleep(50 * time.Millisecond) // into the read
		if viaShutdown {
			s.Shutdown()
		} else {
			l.Reads.Close()
		}
		select {
		case err := <-done:
			if viaShutdown != (err == nil) {
				t.Errorf("shutdown %v: Serve = %v", viaShutdown, err)
			}
			if err != nil && !strings.Contains(err.Error(), "no longer reading requests") {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve still running 5 s after its socket closed (shutdown %v)", viaShutdown)
		}
		s.Shutdown()
	}
}

// fakeFiles serves one name and records who asked; "broken" fails.
type fakeFiles struct {
	mu     sync.Mutex
	remote []netip.Addr
}

func (f *fakeFiles) Open(name string, remote netip.Addr) (io.ReadCloser, int64, error) {
	f.mu.Lock()
	f.remote = append(f.remote, remote)
	f.mu.Unlock()
	switch name {
	case "grub/grub.cfg":
		return io.NopCloser(strings.NewReader("configfile x\n")), 13, nil
	case "broken":
		return nil, 0, errors.New("no such machine")
	case "revocations_sku.efi":
		return nil, 0, absent{}
	}
	return nil, 0, fs.ErrNotExist
}

type absent struct{}

func (absent) Error() string { return "file not found" }
func (absent) Absent() bool  { return true }

// Files is asked first, with the requester's address; a name it does not
// serve falls to the directory; its other errors reach the client.
// GRUB's leading slash is dropped before either sees the name.
func TestFilesComeFirst(t *testing.T) {
	files := &fakeFiles{}
	addr, dir, s := serveWith(t, nil, func(s *Server) { s.Files = files })
	got, size, err := fetch(t, addr, "/grub/grub.cfg", 0)
	if err != nil || string(got) != "configfile x\n" || size != 13 {
		t.Errorf("/grub/grub.cfg: %q (tsize %d), %v", got, size, err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	if got, _, err := fetch(t, addr, "//ipxe.efi", 0); err != nil || !bytes.Equal(got, want) {
		t.Errorf("//ipxe.efi from the directory: %d bytes, %v", len(got), err)
	}
	if _, _, err := fetch(t, addr, "broken", 0); err == nil || !strings.Contains(err.Error(), "no such machine") {
		t.Errorf("broken: %v, want Files' error", err)
	}
	// A name asked for in case it exists is no failure.
	if _, _, err := fetch(t, addr, "revocations_sku.efi", 0); err == nil {
		t.Error("revocations_sku.efi served")
	}
	absents := func() float64 { return testutil.ToFloat64(s.metrics.transfers.WithLabelValues("absent")) }
	if a, f := waitFor(absents, 1), testutil.ToFloat64(s.metrics.transfers.WithLabelValues("failure")); a != 1 || f != 1 {
		t.Errorf("absent %v, failures %v; want 1 and 1 (broken)", a, f)
	}
	files.mu.Lock()
	defer files.mu.Unlock()
	if len(files.remote) != 4 || files.remote[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Files saw requesters %v, want 127.0.0.1 four times", files.remote)
	}
}
