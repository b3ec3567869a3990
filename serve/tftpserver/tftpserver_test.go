package tftpserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func serve(t *testing.T) (addr string, dir string, s *Server) {
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
	s, err := New(dir, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
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
	// The server counts a transfer when the last ACK arrives, after the
	// client has its data.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.metrics.transfers.WithLabelValues("success")) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(s.metrics.transfers.WithLabelValues("success")); n != 4 {
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
	// Unconnected: any source port of the server may answer.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, _ := net.ResolveUDPAddr("udp", addr)
	wrq := append([]byte{0, 2}, []byte("new.efi\x00octet\x00")...)
	conn.WriteTo(wrq, server)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, _, err := conn.ReadFrom(buf)
	if err != nil || n < 4 || binary.BigEndian.Uint16(buf) != 5 || binary.BigEndian.Uint16(buf[2:]) != 2 || !strings.Contains(string(buf[4:n]), "read-only") {
		t.Fatalf("answer to WRQ: % x, %v; want ERROR code 2 (access violation)", buf[:n], err)
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
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, _ := net.ResolveUDPAddr("udp", addr)
	rrq := append([]byte{0, 1}, []byte("ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00")...)
	conn.WriteTo(rrq, server)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFrom(buf)
	if err != nil || n < 2 || binary.BigEndian.Uint16(buf) != 6 {
		t.Fatalf("answer to RRQ with options: % x, %v; want OACK", buf[:n], err)
	}
	opts := string(buf[2:n])
	for _, want := range []string{"blksize\x001468\x00", "tsize\x00" + strconv.FormatInt(info.Size(), 10) + "\x00"} {
		if !strings.Contains(opts, want) {
			t.Errorf("OACK %q lacks %q", opts, want)
		}
	}
	conn.WriteTo(append([]byte{0, 5, 0, 8}, "TFTP Aborted\x00"...), from)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.metrics.transfers.WithLabelValues("size_probe")) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p, f := testutil.ToFloat64(s.metrics.transfers.WithLabelValues("size_probe")), testutil.ToFloat64(s.metrics.transfers.WithLabelValues("failure")); p != 1 || f != 0 {
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
	server, _ := net.ResolveUDPAddr("udp", addr)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteToUDP([]byte("\x00\x01sub/snp.efi\x00octet\x00"), server)
	buf := make([]byte, 600)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, tid, err := c.ReadFromUDP(buf)
	if err != nil || n != 4+len("arm64") || binary.BigEndian.Uint16(buf) != 3 {
		t.Fatalf("first block: % x %v", buf[:n], err)
	}
	blocking := func() float64 { return testutil.ToFloat64(s.metrics.blocking) }
	if got := blocking(); got != 1 {
		t.Fatalf("pxeops_tftp_blocking_transfers while the ACK is held back: %v, want 1", got)
	}
	c.WriteToUDP([]byte{0, 4, 0, 1}, tid)
	deadline := time.Now().Add(3 * time.Second)
	for blocking() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := blocking(); got != 0 {
		t.Errorf("pxeops_tftp_blocking_transfers after the last ACK: %v", got)
	}
}
