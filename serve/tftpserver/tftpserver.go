// Package tftpserver serves iPXE binaries over TFTP: read-only, confined
// to one directory, with blksize and tsize negotiation (pin/tftp) and
// per-transfer metrics. Its only job is to get firmware to iPXE, which
// then moves to HTTP.
package tftpserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/pxeops/pxeops/internal/safefile"
)

// Server is a read-only TFTP server over one directory. pin/tftp serves
// reads; write requests never reach it (see Listener) and are refused
// here with error 2, access violation.
type Server struct {
	root    *os.Root
	dir     string
	srv     *tftp.Server
	log     *slog.Logger
	metrics *metrics

	mu     sync.Mutex
	writes *net.UDPConn // closed by Shutdown
}

// blockingTransfers is how many transfers at a time wait for ACKs in a
// blocking read on their own thread (our pin/tftp patch, see
// pintftp/PATCHES.md): what lets a lock-step transfer keep up with
// tftpd-hpa. More than a rack rebooting at once; beyond it transfers
// use Go's netpoller, slower per block but without a thread each.
const blockingTransfers = 128

// New opens dir (the iPXE binaries) and prepares the server; reg may be nil.
func New(dir string, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	root, err := safefile.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--ipxe-dir %s: %w (Debian's ipxe package puts undionly.kpxe, ipxe.efi and snponly.efi in /usr/lib/ipxe: apt-get install ipxe)", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{root: root, dir: dir, log: log}
	s.srv = tftp.NewServer(s.read, nil)
	s.srv.SetHook(s)
	s.srv.SetTimeout(2 * time.Second)
	s.srv.SetBlockingReads(blockingTransfers)
	s.metrics = newMetrics(reg, s.srv.BlockingReadsInUse)
	return s, nil
}

// Check reports the first of files that the server cannot serve, with
// the fix. Debian's /usr/lib/ipxe/ipxe.efi is a symlink to /boot, which
// the confinement refuses like any other way out: use snponly.efi, or
// copy ipxe.efi into the directory.
func (s *Server) Check(files ...string) error {
	for _, f := range files {
		info, err := s.root.Stat(f)
		if err == nil && info.Mode().IsRegular() {
			continue
		}
		if target, lerr := os.Readlink(filepath.Join(s.dir, f)); lerr == nil {
			return fmt.Errorf("--ipxe-dir %s: %s is a symlink to %s, outside the directory, and is not served; copy the file in or choose another binary", s.dir, f, target)
		}
		return fmt.Errorf("--ipxe-dir %s: %s missing (apt-get install ipxe provides undionly.kpxe and snponly.efi)", s.dir, f)
	}
	return nil
}

// Listener is the TFTP port: two sockets in one SO_REUSEPORT group. A
// classic BPF program steers write requests to Writes and everything
// else to Reads, so pin/tftp (which answers a write request with error 1
// and lets no handler choose the code) only ever sees reads, on the
// *net.UDPConn it needs for large blocks, while writes get the access
// violation (error 2) a read-only server owes them.
type Listener struct {
	Reads  *net.UDPConn
	Writes *net.UDPConn // nil where the kernel refused the program
	// WritesErr says why Writes is nil; pin/tftp then refuses writes
	// with its error 1.
	WritesErr error
}

// LocalAddr is the address the port is bound to.
func (l *Listener) LocalAddr() net.Addr { return l.Reads.LocalAddr() }

// Listen opens the TFTP port for addr, with errors that name the fix.
func Listen(addr string) (*Listener, error) {
	// A plain bind first: with SO_REUSEPORT a second pxeops of the same
	// user would share the port silently instead of being told it is taken.
	probe, err := net.ListenPacket("udp", addr)
	switch {
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("--tftp-addr %s: %w: port 69 needs root or CAP_NET_BIND_SERVICE", addr, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--tftp-addr %s: %w: another TFTP server (tftpd-hpa, dnsmasq, pxeops) holds the port", addr, err)
	case err != nil:
		return nil, fmt.Errorf("--tftp-addr %s: %w", addr, err)
	}
	bound := probe.LocalAddr().String() // the port chosen for :0
	probe.Close()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp", bound)
	if err != nil {
		return nil, fmt.Errorf("--tftp-addr %s: %w", addr, err)
	}
	l := &Listener{Reads: conn.(*net.UDPConn)}
	// pin/tftp learns the receiving address and the interface MTU (hence
	// the largest blksize it grants) from IP_PKTINFO; turn it on now, so
	// requests queued before Serve starts carry it too.
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("--tftp-addr %s: %w", addr, err)
	}
	l.Writes, l.WritesErr = listenWrites(lc, l.Reads)
	return l, nil
}

// steerWrites picks socket 1 of the reuseport group for a packet whose
// first two bytes (the TFTP opcode) are 2, a write request, else socket
// 0. The kernel runs it with the packet data at the UDP payload.
var steerWrites = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 0, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 2, SkipTrue: 1},
	bpf.RetConstant{Val: 0},
	bpf.RetConstant{Val: 1},
}

// listenWrites joins a second socket to reads' port (sockets are numbered
// in the order they bind) and attaches the steering program to the group.
func listenWrites(lc net.ListenConfig, reads *net.UDPConn) (*net.UDPConn, error) {
	prog, err := bpf.Assemble(steerWrites)
	if err != nil {
		return nil, err
	}
	conn, err := lc.ListenPacket(context.Background(), "udp", reads.LocalAddr().String())
	if err != nil {
		return nil, err
	}
	raw, err := reads.SyscallConn()
	if err == nil {
		var serr error
		err = raw.Control(func(fd uintptr) {
			fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
			serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
		})
		err = errors.Join(err, serr)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn.(*net.UDPConn), nil
}

// Serve serves the listener until Shutdown: reads with pin/tftp, writes
// refused here.
func (s *Server) Serve(l *Listener) error {
	if l.Writes != nil {
		s.mu.Lock()
		s.writes = l.Writes
		s.mu.Unlock()
		go s.refuseWrites(l.Writes)
	} else {
		s.log.Warn("tftp: write requests get pin/tftp's error 1, not 2 (access violation): the kernel refused the steering program", "err", l.WritesErr)
	}
	return s.srv.Serve(l.Reads)
}

// Shutdown stops accepting requests and waits for transfers to end.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.writes != nil {
		s.writes.Close()
	}
	s.mu.Unlock()
	s.srv.Shutdown()
}

// writeRefusal is error 2, access violation.
var writeRefusal = append([]byte{0, 5, 0, 2}, "read-only server: writes are refused\x00"...)

func (s *Server) refuseWrites(conn *net.UDPConn) {
	buf := make([]byte, 516)
	for {
		n, peer, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by Shutdown
		}
		if n < 2 || binary.BigEndian.Uint16(buf) != 2 {
			continue
		}
		name, _, _ := bytes.Cut(buf[2:n], []byte{0})
		s.metrics.transfers.WithLabelValues("failure").Inc()
		s.log.Warn("tftp write refused", "file", strconv.Quote(string(name[:min(len(name), 128)])), "remote", peer.String())
		conn.WriteToUDPAddrPort(writeRefusal, peer)
	}
}

// ResolveName maps a requested file name to a path inside the root, or
// refuses it: absolute paths, "..", backslashes and NULs never reach the
// file system, and os.Root refuses symlinks that leave the root.
func ResolveName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty file name")
	case strings.ContainsAny(name, "\\\x00"):
		return "", errors.New("backslash or NUL in file name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute file name")
	case !fs.ValidPath(name):
		return "", errors.New("file name leaves the served directory")
	}
	return name, nil
}

func (s *Server) read(name string, rf io.ReaderFrom) error {
	path, err := ResolveName(name)
	if err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	// A named pipe or device is "not found" at once, never waited on.
	f, err := safefile.OpenIn(s.root, path)
	if err != nil {
		return fmt.Errorf("%q: file not found", name)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%q: file not found", name)
	}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(info.Size())
	}
	n, err := rf.ReadFrom(f)
	s.metrics.bytes.Add(float64(n))
	return err
}

// OnSuccess records a finished transfer.
func (s *Server) OnSuccess(st tftp.TransferStats) {
	s.metrics.transfers.WithLabelValues("success").Inc()
	s.metrics.duration.Observe(st.Duration.Seconds())
	s.log.Info("tftp transfer", "file", st.Filename, "remote", st.RemoteAddr.String(), "took", st.Duration.Round(time.Millisecond), "datagrams", st.DatagramsSent)
}

// OnFailure records a failed transfer. UEFI firmware asks for tsize,
// takes the answer and aborts with error 8 before asking again: that size
// probe is counted apart and not logged as a failure.
func (s *Server) OnFailure(st tftp.TransferStats, err error) {
	if strings.Contains(err.Error(), "code=8") {
		s.metrics.transfers.WithLabelValues("size_probe").Inc()
		s.log.Debug("tftp size probe", "file", st.Filename, "remote", st.RemoteAddr.String())
		return
	}
	s.metrics.transfers.WithLabelValues("failure").Inc()
	s.log.Warn("tftp transfer failed", "file", st.Filename, "remote", st.RemoteAddr.String(), "err", err)
}
