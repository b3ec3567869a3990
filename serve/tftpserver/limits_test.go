package tftpserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"log/slog"

	"github.com/pxeops/pxeops/internal/logtest"
)

func (s *Server) refusedCount(reason string) float64 {
	return testutil.ToFloat64(s.metrics.refused.WithLabelValues(reason))
}

// A flood of read requests from one socket that never acknowledges
// anything: beyond the per-client limit each is answered "server busy"
// and counted, a real client (another address) still gets its file, and
// the log holds a few lines with a count, not one per packet.
func TestFloodFromOneClientLeavesOthersServed(t *testing.T) {
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// A held transfer gives up after 2–3 s, after the flood has arrived
	// (and before Shutdown would wait long for it).
	addr, dir, s := serveWith(t, log, func(s *Server) { l := &s.Limits; l.Timeout, l.Retries = time.Second, 1 })
	server, _ := net.ResolveUDPAddr("udp", addr)
	flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()

	var mu sync.Mutex
	busy, transfers := 0, map[int]bool{} // error answers; ports that sent OACK or DATA
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := flood.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if code, msg, ok := tftpError(buf[:n]); ok && code == 0 && strings.Contains(msg, "server busy") {
				busy++
			} else if !ok {
				transfers[from.Port] = true
			}
			mu.Unlock()
		}
	}()
	const requests = 2000
	rrq := []byte("\x00\x01ipxe.efi\x00octet\x00blksize\x001432\x00tsize\x000\x00")
	for i := range requests {
		flood.WriteToUDP(rrq, server)
		if i%25 == 24 {
			time.Sleep(10 * time.Millisecond) // paced so the socket buffers hold it
		}
	}

	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	if got, _, err := fetch(t, addr, "ipxe.efi", 1468); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("a real client during the flood: %d bytes, %v", len(got), err)
	}
	limited := func() float64 { return s.refusedCount("client_limit") }
	deadline := time.Now().Add(3 * time.Second)
	for prev := -1.0; limited() != prev && time.Now().Before(deadline); {
		prev = limited()
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the last answers in flight
	s.Shutdown()                       // flushes the log's counts
	mu.Lock()
	defer mu.Unlock()
	refused := limited()
	if len(transfers) == 0 || len(transfers) > 8 {
		t.Errorf("the flood got %d transfers, want 1–8 (the per-client limit)", len(transfers))
	}
	if busy < requests/2 || float64(busy) > refused {
		t.Errorf("%d of %d flood requests answered \"server busy\", %v counted in pxeops_tftp_refused_total{reason=\"client_limit\"}", busy, requests, refused)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	repeated := false
	for _, l := range lines {
		if strings.Contains(l, "reason=client_limit") && strings.Contains(l, "repeated="+strconv.Itoa(int(refused)-1)) {
			repeated = true
		}
	}
	if len(lines) > 10 || !repeated {
		t.Errorf("%d log lines for %v refusals, want a few with the count (repeated=%d):\n%s", len(lines), refused, int(refused)-1, strings.Join(lines[:min(len(lines), 20)], "\n"))
	}
}

// The global limit: with two transfers held, a third request from
// anywhere is answered "server busy"; a finished transfer frees its slot.
func TestTransferLimit(t *testing.T) {
	addr, _, s := serveWith(t, nil, func(s *Server) { l := &s.Limits; l.Transfers, l.Timeout, l.Retries = 2, time.Second, 1 })
	rrq := []byte("\x00\x01sub/snp.efi\x00octet\x00")
	first, block, tid := request(t, addr, rrq)
	if _, _, isErr := tftpError(block); isErr {
		t.Fatalf("first request: %q", block)
	}
	request(t, addr, rrq)
	_, answer, _ := request(t, addr, rrq)
	if code, msg, ok := tftpError(answer); !ok || code != 0 || !strings.Contains(msg, "server busy") {
		t.Fatalf("third request with two in flight: %q; want error 0, server busy", answer)
	}
	if n := waitFor(func() float64 { return s.refusedCount("busy") }, 1); n != 1 { // counted after the answer is sent
		t.Errorf("pxeops_tftp_refused_total{reason=\"busy\"} = %v, want 1", n)
	}
	first.WriteToUDP([]byte{0, 4, 0, 1}, tid) // the last block's ACK ends the first transfer
	success := func() float64 { return testutil.ToFloat64(s.metrics.transfers.WithLabelValues("success")) }
	waitFor(success, 1)
	if _, answer, _ := request(t, addr, rrq); binary.BigEndian.Uint16(answer) != 3 {
		t.Errorf("request after a transfer ended: %q; want DATA", answer)
	}
}

// A transfer that is never acknowledged gives its slot back once its
// retransmissions run out.
func TestUnacknowledgedTransferFreesItsSlot(t *testing.T) {
	addr, _, s := serveWith(t, nil, func(s *Server) { l := &s.Limits; l.PerClient, l.Timeout, l.Retries = 1, 200*time.Millisecond, 1 })
	rrq := []byte("\x00\x01ipxe.efi\x00octet\x00")
	request(t, addr, rrq) // never acknowledged
	_, answer, _ := request(t, addr, rrq)
	if code, msg, ok := tftpError(answer); !ok || code != 0 || !strings.Contains(msg, "transfers from 127.0.0.1") {
		t.Fatalf("second request from one address with a limit of 1: %q; want error 0 naming the limit", answer)
	}
	if n := waitFor(func() float64 { return s.refusedCount("client_limit") }, 1); n != 1 {
		t.Errorf("pxeops_tftp_refused_total{reason=\"client_limit\"} = %v, want 1", n)
	}
	// 2 × 200 ms of waiting plus up to 1 s of pin/tftp's backoff.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, answer, _ := request(t, addr, rrq)
		if binary.BigEndian.Uint16(answer) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot still taken 3 s after an unacknowledged transfer began: %q", answer)
		}
	}
}

// A request's file name and mode must each end in a NUL and the mode be
// octet or netascii, in any case (RFC 1350); anything else is error 4,
// illegal TFTP operation, naming the problem.
func TestRequestsAreParsedStrictly(t *testing.T) {
	addr, _, s := serve(t)
	for packet, want := range map[string]string{
		"\x00\x01ipxe.efi\x00mail\x00":                      `mode "mail" not supported`,
		"\x00\x01ipxe.efi\x00binary\x00blksize\x001432\x00": `mode "binary" not supported`,
		"\x00\x01ipxe.efi\x00\xff\xfe\x00":                  `not supported`,
		"\x00\x01ipxe.efi\x00octet":                         "mode not NUL-terminated",
		"\x00\x01ipxe.efi\x00octetgarbage\x00":              `mode "octetgarbage" not supported`,
		"\x00\x01ipxe.efi":                                  "file name not NUL-terminated",
		"\x00\x01":                                          "file name not NUL-terminated",
	} {
		_, answer, _ := request(t, addr, []byte(packet))
		if code, msg, ok := tftpError(answer); !ok || code != 4 || !strings.Contains(msg, want) {
			t.Errorf("%q: answer %q; want error 4, %s", packet, answer, want)
		}
	}
	if n := waitFor(func() float64 { return s.refusedCount("bad_request") }, 7); n != 7 {
		t.Errorf("pxeops_tftp_refused_total{reason=\"bad_request\"} = %v, want 7", n)
	}
	for _, mode := range []string{"octet", "OCTET", "NetASCII"} {
		conn, answer, tid := request(t, addr, []byte("\x00\x01sub/snp.efi\x00"+mode+"\x00"))
		if binary.BigEndian.Uint16(answer) != 3 || string(answer[4:]) != "arm64" {
			t.Errorf("mode %s: %q; want DATA", mode, answer)
		}
		conn.WriteToUDP([]byte{0, 4, 0, 1}, tid)
	}
}

// Out of descriptors, a client is told "server busy", not "file not
// found": whether the transfer's socket or the file could not be opened.
func TestOutOfDescriptorsIsBusy(t *testing.T) {
	addr, _, s := serve(t)
	server, _ := net.ResolveUDPAddr("udp", addr)
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File
	defer func() {
		for _, f := range fillers {
			f.Close()
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}
	rrq := []byte("\x00\x01sub/snp.efi\x00octet\x00")
	if answer, _ := ask(t, client, server, rrq); !isBusy(answer) {
		t.Errorf("no descriptor for the transfer's socket: %q; want error 0, server busy", answer)
	}
	fillers[len(fillers)-1].Close() // one for the socket, none for the file
	fillers = fillers[:len(fillers)-1]
	if answer, _ := ask(t, client, server, rrq); !isBusy(answer) {
		t.Errorf("no descriptor for the file: %q; want error 0, server busy", answer)
	}
	if n := waitFor(func() float64 { return s.refusedCount("resources") }, 2); n != 2 {
		t.Errorf("pxeops_tftp_refused_total{reason=\"resources\"} = %v, want 2", n)
	}
}

func isBusy(p []byte) bool {
	code, msg, ok := tftpError(p)
	return ok && code == 0 && strings.Contains(msg, "server busy")
}

func TestDefaultTransfersFitTheDescriptorLimit(t *testing.T) {
	for nofile, want := range map[uint64]int{0: 1024, 1 << 20: 1024, 4096: 1024, 1024: 256, 2: 1} {
		if got := defaultTransfers(nofile); got != want {
			t.Errorf("descriptor limit %d: %d transfers, want %d", nofile, got, want)
		}
	}
}
