// Package tftpserver serves iPXE binaries over TFTP: read-only, confined
// to one directory, with blksize and tsize negotiation (pin/tftp) and
// per-transfer metrics. Its job is to get firmware to iPXE, which then
// moves to HTTP, or, on the GRUB route, to carry what Files serves
// (shim, GRUB, their configs and the kernels: that GRUB has no HTTP).
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
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/pxeops/pxeops/internal/ratelog"
	"github.com/pxeops/pxeops/internal/safefile"
)

// Server is a read-only TFTP server over one directory. pin/tftp serves
// reads; write requests never reach it (see Listener) and are refused
// here with error 2, access violation.
type Server struct {
	// Limits are New's defaults; change them before Serve.
	Limits Limits
	// Files, when set before Serve, is asked first for every name.
	Files Files
	// Timeline, when set before Serve, is told of every transfer's end
	// (size probes and names firmware asks for in case they exist aside).
	Timeline Timeline

	root    *os.Root
	dir     string
	srv     *tftp.Server
	log     *slog.Logger
	warn    *ratelog.Logger
	metrics *metrics
	slots   slots

	mu     sync.Mutex
	writes *net.UDPConn // closed by Shutdown
}

// Files serves names beyond the directory. Open returns an error
// matching fs.ErrNotExist for a name it does not serve, and the directory
// is tried; any other error is what the client is told. An error with a
// method Absent() bool that says true is a name firmware asks for in case
// it exists: counted as "absent" and logged at debug level only. remote
// is the requester, whom a machine's own config is for.
type Files interface {
	Open(name string, remote netip.Addr) (r io.ReadCloser, size int64, err error)
}

// Limits bound what the server takes on, so that a flood of requests
// (one socket sending read requests it never acknowledges is enough) can
// neither exhaust descriptors nor crowd out real clients. Requests beyond
// them are answered with error 0, "server busy", and counted in
// pxeops_tftp_refused_total.
type Limits struct {
	// Transfers is how many transfers may be in flight at once. Each
	// holds two descriptors (its socket and the file). Default 1024, or a
	// quarter of the descriptor limit when that is lower, leaving the
	// rest to HTTP and git.
	Transfers int
	// PerClient is how many of them one source address may hold. A PXE
	// client needs one or two at a time (UEFI's size probe, then the
	// file). Default 8.
	PerClient int
	// Timeout is how long a transfer waits for each ACK, Retries how many
	// times it resends before giving up (defaults 2 s and 5). A transfer
	// never acknowledged frees its slot after at most
	// (Retries+1)·Timeout plus Retries·1 s of pin/tftp's random backoff,
	// 17 s by default.
	Timeout time.Duration
	Retries int
	// LogEvery is how often one kind of repeated failure (refusals, bad
	// requests, failed transfers) is logged, with how many there were.
	// Default 10 s.
	LogEvery time.Duration
}

// defaultTransfers is Limits.Transfers' default for a descriptor limit
// of nofile (0: unknown).
func defaultTransfers(nofile uint64) int {
	if nofile == 0 || nofile/4 >= 1024 {
		return 1024
	}
	return max(1, int(nofile/4))
}

// blockingTransfers is how many transfers at a time wait for ACKs in a
// blocking read on their own thread (our pin/tftp patch, see
// pintftp/PATCHES.md): what lets a lock-step transfer keep up with
// tftpd-hpa. More than a rack rebooting at once; beyond it transfers
// use Go's netpoller, slower per block but without a thread each.
const blockingTransfers = 128

// New opens dir (the iPXE binaries) and prepares the server; reg may be nil.
func New(dir string, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	root, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var nofile unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile) // Go raised it to the hard limit
	s := &Server{root: root, dir: dir, log: log, warn: ratelog.New(log, 0)}
	s.Limits = Limits{Transfers: defaultTransfers(nofile.Cur), PerClient: 8, Timeout: 2 * time.Second, Retries: 5, LogEvery: 10 * time.Second}
	s.srv = tftp.NewServer(s.read, nil)
	s.srv.SetHook(s)
	s.srv.SetAdmit(s.admit)
	s.srv.SetBlockingReads(blockingTransfers)
	s.metrics = newMetrics(reg, s.srv.BlockingReadsInUse)
	return s, nil
}

// Check reports the first of files that the server cannot serve, with
// the fix. Debian's /usr/lib/ipxe/ipxe.efi is a symlink to /boot, which
// the confinement refuses like any other way out: use snponly.efi, or
// copy ipxe.efi into the directory.
func (s *Server) Check(files ...string) error { return check(s.root, s.dir, files) }

// CheckDir is Check before there is a server: dir opens, and files are
// served from it.
func CheckDir(dir string, files ...string) error {
	root, err := openDir(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return check(root, dir, files)
}

func openDir(dir string) (*os.Root, error) {
	root, err := safefile.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--ipxe-dir %s: %w (Debian's ipxe package puts undionly.kpxe, ipxe.efi and snponly.efi in /usr/lib/ipxe: apt-get install ipxe)", dir, err)
	}
	return root, nil
}

func check(root *os.Root, dir string, files []string) error {
	for _, f := range files {
		info, err := root.Stat(f)
		if err == nil && info.Mode().IsRegular() {
			continue
		}
		if target, lerr := os.Readlink(filepath.Join(dir, f)); lerr == nil {
			return fmt.Errorf("--ipxe-dir %s: %s is a symlink to %s, outside the directory, and is not served; copy the file in or choose another binary", dir, f, target)
		}
		return fmt.Errorf("--ipxe-dir %s: %s missing (apt-get install ipxe provides undionly.kpxe and snponly.efi)", dir, f)
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
// refused here. It returns nil after Shutdown and an error when the
// listener's socket is closed under it: nothing is served any more.
func (s *Server) Serve(l *Listener) error {
	s.srv.SetTimeout(s.Limits.Timeout)
	s.srv.SetRetries(s.Limits.Retries)
	s.warn.SetInterval(s.Limits.LogEvery)
	if l.Writes != nil {
		s.mu.Lock()
		s.writes = l.Writes
		s.mu.Unlock()
		go s.refuseWrites(l.Writes)
	} else {
		s.log.Warn("tftp: write requests get pin/tftp's error 1, not 2 (access violation): the kernel refused the steering program", "err", l.WritesErr)
	}
	if err := s.srv.Serve(l.Reads); err != nil {
		return fmt.Errorf("tftp %s: no longer reading requests: %w", l.LocalAddr(), err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for transfers to end.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.writes != nil {
		s.writes.Close()
	}
	s.mu.Unlock()
	s.srv.Shutdown()
	s.warn.Flush()
}

// slots counts transfers in flight, in all and per client address.
type slots struct {
	mu      sync.Mutex
	total   int
	clients map[netip.Addr]int
}

// Why admit refuses a request; the client is told in words.
var (
	errBusy        = errors.New("transfer limit reached")
	errClientLimit = errors.New("per-client transfer limit reached")
)

// admit takes a slot for a request from remote, or refuses it within
// Limits (pin/tftp asks before it opens the transfer's socket).
func (s *Server) admit(remote *net.UDPAddr) (func(), error) {
	ip, _ := netip.AddrFromSlice(remote.IP)
	ip = ip.Unmap()
	sl := &s.slots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.total >= s.Limits.Transfers {
		return nil, &tftp.Error{Code: tftp.ErrCodeNotDefined, Msg: "server busy, retry later", Err: errBusy}
	}
	if sl.clients[ip] >= s.Limits.PerClient {
		msg := fmt.Sprintf("server busy: %d transfers from %s already, retry later", sl.clients[ip], ip)
		return nil, &tftp.Error{Code: tftp.ErrCodeNotDefined, Msg: msg, Err: errClientLimit}
	}
	if sl.clients == nil {
		sl.clients = map[netip.Addr]int{}
	}
	sl.total++
	sl.clients[ip]++
	return func() {
		sl.mu.Lock()
		defer sl.mu.Unlock()
		sl.total--
		if sl.clients[ip]--; sl.clients[ip] == 0 {
			delete(sl.clients, ip)
		}
	}, nil
}

// outOfResources: the process or the system is out of descriptors or
// buffers, which a client is told as "server busy", not "file not found".
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// refusal is the pxeops_tftp_refused_total reason for a request that got
// no transfer, or "" for a transfer that failed.
func refusal(st tftp.TransferStats, err error) string {
	var te *tftp.Error
	switch {
	case errors.Is(err, errBusy):
		return "busy"
	case errors.Is(err, errClientLimit):
		return "client_limit"
	case outOfResources(err):
		return "resources"
	case errors.As(err, &te) && te.Code == tftp.ErrCodeIllegalOperation:
		return "bad_request"
	case st.RemoteAddr == nil: // from the request loop: not a request (a stray ACK, say)
		return "bad_packet"
	}
	return ""
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
		s.warn.Warn("write", "tftp write refused", "file", strconv.Quote(string(name[:min(len(name), 128)])), "remote", peer.String())
		conn.WriteToUDPAddrPort(writeRefusal, peer)
	}
}

// ResolveName maps a requested file name to a path inside the root, or
// refuses it: "..", backslashes and NULs never reach the file system, and
// os.Root refuses symlinks that leave the root. Leading slashes are
// dropped: the root is all a client can see, and GRUB asks for
// /grub/grub.cfg, its prefix, with one.
func ResolveName(name string) (string, error) {
	name = strings.TrimLeft(name, "/")
	switch {
	case name == "":
		return "", errors.New("empty file name")
	case strings.ContainsAny(name, "\\\x00"):
		return "", errors.New("backslash or NUL in file name")
	case !fs.ValidPath(name):
		return "", errors.New("file name leaves the served directory")
	}
	return name, nil
}

func (s *Server) read(name string, rf io.ReaderFrom) error {
	ot, _ := rf.(tftp.OutgoingTransfer)
	path, err := ResolveName(name)
	if err != nil {
		s.note(ot, name, 0, err)
		return fmt.Errorf("%q: %w", name, err)
	}
	r, size, err := s.open(path, ot)
	if err != nil {
		s.note(ot, name, 0, err)
		return fmt.Errorf("%q: %w", name, err)
	}
	defer r.Close()
	if ot != nil {
		ot.SetSize(size)
	}
	n, err := rf.ReadFrom(r)
	s.metrics.bytes.Add(float64(n))
	s.note(ot, name, n, err)
	return err
}

// open finds path in Files, then in the directory.
func (s *Server) open(path string, ot tftp.OutgoingTransfer) (io.ReadCloser, int64, error) {
	if s.Files != nil && ot != nil {
		ua := ot.RemoteAddr()
		remote, _ := netip.AddrFromSlice(ua.IP)
		r, size, err := s.Files.Open(path, remote.Unmap())
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return r, size, err
		}
	}
	// A named pipe or device is "not found" at once, never waited on.
	f, err := safefile.OpenIn(s.root, path)
	if err != nil {
		return nil, 0, openError(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, errors.New("file not found")
	}
	return f, info.Size(), nil
}

// openError is what a client is told when a file cannot be opened.
func openError(err error) error {
	if outOfResources(err) {
		return &tftp.Error{Code: tftp.ErrCodeNotDefined, Msg: "server busy, retry later", Err: err}
	}
	return errors.New("file not found")
}

// OnSuccess records a finished transfer.
func (s *Server) OnSuccess(st tftp.TransferStats) {
	s.metrics.transfers.WithLabelValues("success").Inc()
	s.metrics.duration.Observe(st.Duration.Seconds())
	s.log.Info("tftp transfer", "file", st.Filename, "remote", st.RemoteAddr.String(), "took", st.Duration.Round(time.Millisecond), "datagrams", st.DatagramsSent)
}

// OnFailure records a failed transfer, or a request refused before one
// started. UEFI firmware asks for tsize, takes the answer and aborts with
// error 8 before asking again: that size probe is counted apart and not
// logged as a failure. Failures are logged at most once per
// Limits.LogEvery and kind (see internal/ratelog).
func (s *Server) OnFailure(st tftp.TransferStats, err error) {
	var a interface{ Absent() bool }
	if errors.As(err, &a) && a.Absent() {
		s.metrics.transfers.WithLabelValues("absent").Inc()
		s.log.Debug("tftp: absent, as expected", "file", st.Filename, "remote", st.RemoteAddr.String())
		return
	}
	if strings.Contains(err.Error(), "code=8") {
		s.metrics.transfers.WithLabelValues("size_probe").Inc()
		s.log.Debug("tftp size probe", "file", st.Filename, "remote", st.RemoteAddr.String())
		return
	}
	if reason := refusal(st, err); reason != "" {
		s.metrics.refused.WithLabelValues(reason).Inc()
		if st.RemoteAddr == nil {
			s.warn.Warn(reason, "tftp request refused", "reason", reason, "err", err)
		} else {
			s.warn.Warn(reason, "tftp request refused", "reason", reason, "file", st.Filename, "remote", st.RemoteAddr.String(), "err", err)
		}
		return
	}
	s.metrics.transfers.WithLabelValues("failure").Inc()
	s.warn.Warn("failure", "tftp transfer failed", "file", st.Filename, "remote", st.RemoteAddr.String(), "err", err)
}
