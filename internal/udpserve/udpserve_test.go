package udpserve

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A real loopback socket: datagrams up to the bound reach the handler
// whole, a longer one is counted and not handled, and closing the socket
// ends Serve with nil.
func TestServe(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		got  [][]byte
		over atomic.Int32
	)
	done := make(chan error, 1)
	go func() {
		done <- Serve(conn, 8, func() { over.Add(1) }, func(pkt []byte, peer netip.AddrPort) {
			mu.Lock()
			got = append(got, bytes.Clone(pkt))
			mu.Unlock()
		})
	}()
	c, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"12345678", "123456789", "1"} {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 && over.Load() == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after close: %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the socket closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || over.Load() != 1 {
		t.Fatalf("handled %q, %d oversized; want the 8- and 1-byte datagrams and one oversized", got, over.Load())
	}
	for _, p := range got {
		if string(p) != "12345678" && string(p) != "1" {
			t.Errorf("handled %q", p)
		}
	}
}
