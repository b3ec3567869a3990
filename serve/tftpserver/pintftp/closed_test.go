package tftp

// pxeops patch: Serve ends when its socket is closed under it.

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A socket closed by anything but Shutdown ends Serve with net.ErrClosed
// (upstream spun forever); Shutdown still makes it return nil.
func TestServeEndsOnClosedSocket(t *testing.T) {
	for _, viaShutdown := range []bool{false, true} {
		s := NewServer(func(string, io.ReaderFrom) error { return nil }, nil)
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(conn) }()
		time.Sleep(50 * time.Millisecond) // into the read
		if viaShutdown {
			s.Shutdown()
		} else {
			conn.Close()
		}
		select {
		case err := <-done:
			if viaShutdown && err != nil {
				t.Errorf("after Shutdown: Serve = %v, want nil", err)
			}
			if !viaShutdown && !errors.Is(err, net.ErrClosed) {
				t.Errorf("after the socket closed: Serve = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve still running 5 s after the socket closed (shutdown %v)", viaShutdown)
		}
		s.Shutdown()
	}
}
