// Package udpserve is the read loop the ProxyDHCP servers share: one
// reader per CPU on one socket, since machines powered on together
// arrive together; datagrams over a size bound counted and dropped
// unread; the first read error other than a close stopping every reader.
package udpserve

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
)

// Serve reads conn until it is closed, giving each datagram of at most
// max bytes to handle, and telling oversized of each longer one. pkt is
// the reader's buffer: valid only until handle returns. handle is called
// from GOMAXPROCS goroutines at once. A closed conn ends Serve with nil;
// another read error closes conn and is returned.
func Serve(conn *net.UDPConn, max int, oversized func(), handle func(pkt []byte, peer netip.AddrPort)) error {
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range cap(errs) {
		go func() { errs <- read(conn, max, oversized, handle) }()
	}
	var first error
	for range cap(errs) {
		if err := <-errs; err != nil && first == nil {
			first = err
			conn.Close() // stop the other readers too
		}
	}
	return first
}

func read(conn *net.UDPConn, max int, oversized func(), handle func([]byte, netip.AddrPort)) error {
	buf := make([]byte, max+1) // one more: a datagram that fills it is too long
	for {
		n, peer, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if n > max {
			oversized()
			continue
		}
		handle(buf[:n], peer)
	}
}
