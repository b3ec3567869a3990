package tftp

// pxeops patch: tests for blocking reads.

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// blockingServer serves a 10-block file on loopback with blocking reads.
func blockingServer(t *testing.T, max int, timeout time.Duration) (*Server, *net.UDPAddr) {
	t.Helper()
	s := NewServer(func(_ string, rf io.ReaderFrom) error {
		_, err := rf.ReadFrom(bytes.NewReader(make([]byte, 10*512)))
		return err
	}, nil)
	s.SetTimeout(timeout)
	s.SetRetries(3)
	s.SetBlockingReads(max)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(conn)
	t.Cleanup(s.Shutdown)
	return s, conn.LocalAddr().(*net.UDPAddr)
}

// request sends a read request from a new socket and returns it with the
// first block's datagram and the transfer's address.
func request(t *testing.T, server *net.UDPAddr) (*net.UDPConn, []byte, *net.UDPAddr) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.WriteToUDP([]byte("\x00\x01file\x00octet\x00"), server); err != nil {
		t.Fatal(err)
	}
	data, from := receive(t, c, 5*time.Second)
	return c, data, from
}

func receive(t *testing.T, c *net.UDPConn, wait time.Duration) ([]byte, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 1024)
	c.SetReadDeadline(time.Now().Add(wait))
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no datagram within %v: %v", wait, err)
	}
	return buf[:n], from
}

func dataBlock(t *testing.T, p []byte) uint16 {
	t.Helper()
	if len(p) < 4 || binary.BigEndian.Uint16(p) != opDATA {
		t.Fatalf("want a DATA packet, got % x", p[:min(len(p), 8)])
	}
	return binary.BigEndian.Uint16(p[2:])
}

// allReleased waits for transfers that ended to give their slots back.
func allReleased(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for s.BlockingReadsInUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.BlockingReadsInUse(); n != 0 {
		t.Fatalf("%d blocking reads still held after the transfers ended", n)
	}
}

func TestBlockingReadsRetransmitAndComplete(t *testing.T) {
	s, addr := blockingServer(t, 4, 300*time.Millisecond)
	c, p, tid := request(t, addr)
	if b := dataBlock(t, p); b != 1 {
		t.Fatalf("first block %d", b)
	}
	if n := s.BlockingReadsInUse(); n != 1 {
		t.Fatalf("%d transfers in blocking reads, want 1", n)
	}
	// Withhold the ACK: the same block must come again after the timeout.
	p, _ = receive(t, c, 3*time.Second)
	if b := dataBlock(t, p); b != 1 {
		t.Fatalf("retransmitted block %d, want 1", b)
	}
	for want := uint16(1); ; want++ {
		if b := dataBlock(t, p); b != want {
			t.Fatalf("block %d, want %d", b, want)
		}
		c.WriteToUDP([]byte{0, byte(opACK), byte(want >> 8), byte(want)}, tid)
		if len(p) < 4+512 {
			break
		}
		p, _ = receive(t, c, 3*time.Second)
	}
	allReleased(t, s)
}

// Datagrams from a stranger are skipped, and must not restart the wait
// for the peer's ACK each time one arrives.
func TestBlockingReadsStrayDatagramsKeepTheDeadline(t *testing.T) {
	_, addr := blockingServer(t, 4, 400*time.Millisecond)
	c, p, tid := request(t, addr)
	dataBlock(t, p)
	start := time.Now()
	stranger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				stranger.WriteToUDP([]byte{0, byte(opACK), 0, 1}, tid)
			}
		}
	}()
	p, _ = receive(t, c, 5*time.Second)
	if b := dataBlock(t, p); b != 1 {
		t.Fatalf("block %d, want the retransmitted 1", b)
	}
	// A wait restarted by every stray datagram would never end.
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("retransmission after %v, timeout is 400ms", waited)
	}
}

// Beyond the limit, transfers use the netpoller and still complete.
func TestBlockingReadsLimit(t *testing.T) {
	s, addr := blockingServer(t, 1, 2*time.Second)
	var clients []*net.UDPConn
	var tids []*net.UDPAddr
	for range 3 {
		c, p, tid := request(t, addr)
		dataBlock(t, p)
		clients, tids = append(clients, c), append(tids, tid)
	}
	if n := s.BlockingReadsInUse(); n != 1 {
		t.Fatalf("%d transfers in blocking reads, limit 1", n)
	}
	for i, c := range clients {
		for b := uint16(1); b <= 11; b++ {
			c.WriteToUDP([]byte{0, byte(opACK), 0, byte(b)}, tids[i])
			if b == 11 {
				break
			}
			p, _ := receive(t, c, 3*time.Second)
			if got := dataBlock(t, p); got != b+1 {
				t.Fatalf("transfer %d: block %d, want %d", i, got, b+1)
			}
		}
	}
	allReleased(t, s)
}
