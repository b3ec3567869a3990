// Package tftpserver serves iPXE binaries over TFTP: read-only, confined
// to one directory, with blksize and tsize negotiation (pin/tftp) and
// per-transfer metrics. Its only job is to get firmware to iPXE, which
// then moves to HTTP.
package tftpserver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// Server is a read-only TFTP server over one directory. It has no write
// handler, so pin/tftp refuses write requests with an ERROR packet; that
// packet carries code 1 with the message "server does not support write
// requests", not code 2 (access violation): pin/tftp does not let a
// handler choose the code, and intercepting requests in front of it would
// cost the receiving-address information it needs for blksize > 512.
type Server struct {
	root    *os.Root
	dir     string
	srv     *tftp.Server
	log     *slog.Logger
	metrics *metrics
}

// New opens dir (the iPXE binaries) and prepares the server; reg may be nil.
func New(dir string, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--ipxe-dir %s: %w (Debian's ipxe package puts undionly.kpxe, ipxe.efi and snponly.efi in /usr/lib/ipxe: apt-get install ipxe)", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{root: root, dir: dir, log: log, metrics: newMetrics(reg)}
	s.srv = tftp.NewServer(s.read, nil)
	s.srv.SetHook(s)
	s.srv.SetTimeout(2 * time.Second)
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

// Listen opens the UDP socket for addr, with errors that name the fix.
func Listen(addr string) (net.PacketConn, error) {
	conn, err := net.ListenPacket("udp", addr)
	switch {
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("--tftp-addr %s: %w: port 69 needs root or CAP_NET_BIND_SERVICE", addr, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--tftp-addr %s: %w: another TFTP server (tftpd-hpa, dnsmasq) holds the port", addr, err)
	case err != nil:
		return nil, fmt.Errorf("--tftp-addr %s: %w", addr, err)
	}
	// pin/tftp learns the receiving address and the interface MTU (hence
	// the largest blksize it grants) from IP_PKTINFO; turn it on now, so
	// requests queued before Serve starts carry it too.
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("--tftp-addr %s: %w", addr, err)
	}
	return conn, nil
}

// Serve serves requests arriving on conn until Shutdown. conn should be
// the *net.UDPConn that Listen returns: pin/tftp reads the receiving
// address and interface MTU from it, which sets the largest blksize it
// accepts (512 otherwise) and the source address of its answers.
func (s *Server) Serve(conn net.PacketConn) error {
	return s.srv.Serve(conn)
}

// Shutdown stops accepting requests and waits for transfers to end.
func (s *Server) Shutdown() { s.srv.Shutdown() }

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
	f, err := s.root.Open(path)
	if err != nil {
		return fmt.Errorf("%q: file not found", name)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
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
