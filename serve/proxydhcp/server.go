package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/udpserve"
	"github.com/pxeops/pxeops/render"
)

// Snapshots gives the snapshot to answer from; nil before the first.
type Snapshots interface {
	Snapshot() *render.Snapshot
}

// maxPacket bounds what is read; a DHCP message over an Ethernet MTU is
// not one a PXE ROM sends.
const maxPacket = 1500

// Server listens for ProxyDHCP (port 67) and boot-server (port 4011)
// requests on one interface.
type Server struct {
	cfg     Config
	snaps   Snapshots
	log     *slog.Logger
	packets *prometheus.CounterVec
	// Where replies go; the defaults are the protocol's, tests on
	// loopback change them.
	clientPort, relayPort int
	broadcast             netip.Addr
}

// New prepares a server; reg may be nil.
func New(cfg Config, snaps Snapshots, log *slog.Logger, reg prometheus.Registerer) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, snaps: snaps, log: log, clientPort: 68, relayPort: 67, broadcast: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_dhcp_packets_total", Help: "DHCP packets by port and result: offer, ack, ignored, malformed, oversized.",
		}, []string{"port", "result"}),
	}
	if reg != nil {
		reg.MustRegister(s.packets)
	}
	return s
}

// InterfaceIP returns the first IPv4 address of the named interface, the
// one clients are told to come back to. Errors say what is wrong with
// the interface, not which one (the caller names it).
func InterfaceIP(name string) (net.IP, error) {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("%w (see ip link)", err)
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
			return ip.IP.To4(), nil
		}
	}
	return nil, errors.New("no IPv4 address on it (see ip addr)")
}

// Listen opens a UDP socket on addr bound to iface (SO_BINDTODEVICE),
// able to broadcast, with errors that name the fix.
func Listen(iface, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1),
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1),
				syscall.BindToDevice(int(fd), iface),
			)
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", addr)
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("ProxyDHCP %s on %s: %w: ports 67 and 4011 need root or CAP_NET_BIND_SERVICE (and CAP_NET_RAW before Linux 5.7, for SO_BINDTODEVICE)", addr, iface, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("ProxyDHCP %s on %s: %w: another DHCP or proxy server (dnsmasq?) holds the port", addr, iface, err)
	case err != nil:
		return nil, fmt.Errorf("ProxyDHCP %s on %s: %w", addr, iface, err)
	}
	// Machines powered on together arrive together: room for a burst
	// while a reader is descheduled or the GC runs.
	u := conn.(*net.UDPConn) // udp4 always gives one
	u.SetReadBuffer(4 << 20)
	return u, nil
}

// Serve answers requests arriving on conn, which listens on port, until
// conn is closed, with one reader per CPU: a storm of machines powered on
// together is the normal case. Bad packets are counted and dropped;
// nothing in a packet can stop a reader.
func (s *Server) Serve(conn *net.UDPConn, port Port) error {
	label := strconv.Itoa(int(port))
	count := map[string]prometheus.Counter{}
	for _, result := range []string{"offer", "ack", "ignored", "malformed", "oversized"} {
		count[result] = s.packets.WithLabelValues(label, result)
	}
	return udpserve.Serve(conn, maxPacket, count["oversized"].Inc, func(pkt []byte, peer netip.AddrPort) {
		s.handle(conn, port, count, pkt, peer)
	})
}

// handle answers one datagram. The per-packet log lines are built only
// when their level is on: at tens of thousands of packets a second,
// formatting them for nothing costs more than answering.
func (s *Server) handle(conn *net.UDPConn, port Port, count map[string]prometheus.Counter, pkt []byte, peer netip.AddrPort) {
	ctx := context.Background()
	req, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		count["malformed"].Inc()
		return
	}
	if s.cfg.Seen != nil && bootClient(req) {
		s.cfg.Seen(req.ClientHWAddr.String())
	}
	reply, why := Answer(req, port, s.snaps.Snapshot(), s.cfg)
	if reply == nil {
		count["ignored"].Inc()
		if why.NoGroup && s.cfg.Timeline != nil {
			s.cfg.Timeline.Unmatched(clientOf(req))
		}
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.Debug("dhcp: no answer", "mac", req.ClientHWAddr.String(), "port", port, "reason", why)
		}
		return
	}
	// Learned before the reply goes out: the machine's next request
	// (its script, over HTTP) must find it.
	if port == BootServerPort && s.cfg.Learn != nil {
		if ci, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok && ci == peer.Addr().Unmap() && !ci.IsUnspecified() {
			s.cfg.Learn(req.ClientHWAddr.String(), ci)
		}
	}
	dst := s.destination(req, peer, port)
	if _, err := conn.WriteToUDPAddrPort(reply.ToBytes(), dst); err != nil {
		s.log.Warn("dhcp: reply not sent", "to", dst.String(), "err", err)
		return
	}
	result := "offer"
	if reply.MessageType() == dhcpv4.MessageTypeAck {
		result = "ack"
	}
	count[result].Inc()
	if s.cfg.Timeline != nil {
		s.noteAnswer(req, port, reply)
	}
	if s.log.Enabled(ctx, slog.LevelInfo) {
		s.log.Info("dhcp: "+result, "mac", req.ClientHWAddr.String(), "file", reply.BootFileName, "to", dst.String())
	}
}

// destination is where a reply goes: to the relay when there is one, to
// the sender for the boot server, else broadcast to the client port.
func (s *Server) destination(req *dhcpv4.DHCPv4, peer netip.AddrPort, port Port) netip.AddrPort {
	if relay, ok := netip.AddrFromSlice(req.GatewayIPAddr.To4()); ok && !relay.IsUnspecified() {
		return netip.AddrPortFrom(relay, uint16(s.relayPort))
	}
	if port == BootServerPort {
		return peer
	}
	return netip.AddrPortFrom(s.broadcast, uint16(s.clientPort))
}
