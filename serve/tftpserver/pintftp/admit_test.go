package tftp

// pxeops patch: tests for strict request parsing, Error and SetAdmit.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Requests as firmware sends them: iPXE (blksize, tsize), EDK2's size
// probe and fetch, PXE ROMs without options, and pin/tftp's own client.
var realRequests = []string{
	"\x00\x01undionly.kpxe\x00octet\x00blksize\x001432\x00tsize\x000\x00",
	"\x00\x01snponly.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00",
	"\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00",
	"\x00\x01pxelinux.0\x00octet\x00",
	"\x00\x01boot/x86_64/loader\x00OCTET\x00blksize\x00512\x00",
	"\x00\x01readme.txt\x00netascii\x00",
	"\x00\x02upload.bin\x00octet\x00tsize\x001024\x00",
}

func TestUnpackRQIsStrict(t *testing.T) {
	for p, want := range map[string]string{
		"\x00\x01f\x00mail\x00":      `mode "mail" not supported`,
		"\x00\x01f\x00octet":         "mode not NUL-terminated",
		"\x00\x01f\x00":              "mode not NUL-terminated",
		"\x00\x01f":                  "file name not NUL-terminated",
		"\x00\x01":                   "file name not NUL-terminated",
		"\x00\x01f\x00\x00":          `mode "" not supported`,
		"\x00\x01f\x00octe\x00t\x00": `mode "octe" not supported`,
	} {
		_, _, _, err := unpackRQ([]byte(p))
		var e *Error
		if !errors.As(err, &e) || e.Code != ErrCodeIllegalOperation || !strings.Contains(e.Msg, want) {
			t.Errorf("%q: %v; want error 4, %s", p, err, want)
		}
	}
	f, m, o, err := unpackRQ([]byte(realRequests[0]))
	if err != nil || f != "undionly.kpxe" || m != "octet" || o["blksize"] != "1432" || o["tsize"] != "0" || len(o) != 2 {
		t.Errorf("iPXE's request: %q %q %v %v", f, m, o, err)
	}
	if _, m, _, err := unpackRQ([]byte("\x00\x01f\x00NetASCII\x00")); err != nil || m != "netascii" {
		t.Errorf("mode NetASCII: %q %v; want netascii", m, err)
	}
}

// FuzzUnpackRQ: a request is refused with error 4, or it had a
// NUL-terminated file name and mode, the mode octet or netascii in any
// case, and the options as upstream parsed them.
func FuzzUnpackRQ(f *testing.F) {
	for _, p := range realRequests {
		f.Add([]byte(p))
	}
	for _, p := range []string{"\x00\x01f\x00mail\x00", "\x00\x01f\x00octet", "\x00\x01", "\x00\x01f\x00octet\x00blksize\x00", "\x00\x01f\x00octet\x00blksize\x001432"} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) < 2 {
			return // parsePacket's short packet
		}
		name, mode, opts, err := unpackRQ(p)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != ErrCodeIllegalOperation {
				t.Fatalf("%q: %v, not error 4", p, err)
			}
			return
		}
		if mode != "octet" && mode != "netascii" {
			t.Fatalf("%q: mode %q", p, mode)
		}
		head := p[2:]
		if len(head) < len(name)+len(mode)+2 || string(head[:len(name)]) != name || head[len(name)] != 0 ||
			!strings.EqualFold(string(head[len(name)+1:len(name)+1+len(mode)]), mode) || head[len(name)+1+len(mode)] != 0 || strings.Contains(name, "\x00") {
			t.Fatalf("%q: name %q, mode %q do not match the packet", p, name, mode)
		}
		rest := head[len(name)+len(mode)+2:]
		fields := bytes.Split(rest, []byte{0})
		for i := 0; i+1 < len(fields); i += 2 {
			if _, ok := opts[string(fields[i])]; !ok {
				t.Fatalf("%q: option %q missing from %v", p, fields[i], opts)
			}
		}
	})
}

// SetAdmit's refusal reaches the client, with the Error's code, from the
// server's own port, and goes to the failure hook; an admitted transfer
// calls done when it ends.
func TestAdmitRefusesAndReleases(t *testing.T) {
	var admitted, done atomic.Int32
	failures := make(chan error, 10)
	s := NewServer(func(_ string, rf io.ReaderFrom) error {
		_, err := rf.ReadFrom(bytes.NewReader([]byte("hello")))
		return err
	}, nil)
	s.SetHook(hookFunc(func(err error) { failures <- err }))
	s.SetAdmit(func(*net.UDPAddr) (func(), error) {
		if admitted.Add(1) > 1 {
			return nil, &Error{Code: ErrCodeNotDefined, Msg: "server busy"}
		}
		return func() { done.Add(1) }, nil
	})
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(conn)
	t.Cleanup(s.Shutdown)
	server := conn.LocalAddr().(*net.UDPAddr)

	c, data, tid := request(t, server)
	if dataBlock(t, data) != 1 {
		t.Fatalf("admitted request: % x", data)
	}
	if _, err := c.WriteToUDP([]byte("\x00\x01file\x00octet\x00"), server); err != nil {
		t.Fatal(err)
	}
	refusal, from := receive(t, c, 5*time.Second)
	if binary.BigEndian.Uint16(refusal) != opERROR || pERROR(refusal).code() != 0 || !strings.HasPrefix(pERROR(refusal).message(), "server busy") || from.Port != server.Port {
		t.Errorf("refused request: %q from %v; want error 0 from %v", refusal, from, server)
	}
	if err := <-failures; !strings.Contains(err.Error(), "server busy") {
		t.Errorf("failure hook: %v", err)
	}
	c.WriteToUDP([]byte{0, 4, 0, 1}, tid)
	for deadline := time.Now().Add(5 * time.Second); done.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if done.Load() != 1 {
		t.Errorf("done called %d times after the transfer ended, want 1", done.Load())
	}
}

// A read handler's *Error is sent with its code, not as code 1.
func TestHandlerErrorKeepsItsCode(t *testing.T) {
	s := NewServer(func(string, io.ReaderFrom) error {
		return &Error{Code: ErrCodeNotDefined, Msg: "server busy, retry later", Err: errors.New("too many open files")}
	}, nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(conn)
	t.Cleanup(s.Shutdown)
	_, p, _ := request(t, conn.LocalAddr().(*net.UDPAddr))
	if binary.BigEndian.Uint16(p) != opERROR || pERROR(p).code() != 0 || !strings.HasPrefix(pERROR(p).message(), "server busy, retry later\x00") {
		t.Errorf("answer % x; want error 0, server busy", p)
	}
}

type hookFunc func(error)

func (hookFunc) OnSuccess(TransferStats)                {}
func (h hookFunc) OnFailure(_ TransferStats, err error) { h(err) }
