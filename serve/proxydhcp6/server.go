package proxydhcp6

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv6"

	"github.com/pxeops/pxeops/internal/udpserve"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Snapshots gives the snapshot to answer from; nil before the first.
type Snapshots interface {
	Snapshot() *render.Snapshot
}

// maxPacket bounds what is read: a boot client's message, even relayed
// twice, fits an Ethernet MTU.
const maxPacket = 1500

// allServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 7.1).
var allServers = net.ParseIP("ff02::1:2")

// Server listens for ProxyDHCPv6 (port 547) and boot-server (port 4011)
// requests on one interface.
type Server struct {
	cfg     Config
	snaps   Snapshots
	log     *slog.Logger
	packets *prometheus.CounterVec
	macs    *learned
	// Where replies to clients go; tests on loopback change it.
	clientPort int
}

// New prepares a server; reg may be nil.
func New(cfg Config, snaps Snapshots, log *slog.Logger, reg prometheus.Registerer) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, snaps: snaps, log: log, clientPort: 546, macs: newLearned(maxLearned, learnedTTL, time.Now),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_dhcp6_packets_total", Help: "DHCPv6 packets by port and result: advertise, reply, ignored, malformed, oversized.",
		}, []string{"port", "result"}),
	}
	if reg != nil {
		reg.MustRegister(s.packets)
	}
	return s
}

// InterfaceAddr returns the first global (or unique local) IPv6 address
// of the named interface, the one clients are told to come back to, and
// its MAC, our DUID. Errors say what is wrong with the interface, not
// which one (the caller names it).
func InterfaceAddr(name string) (netip.Addr, net.HardwareAddr, error) {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("%w (see ip link)", err)
	}
	if len(iface.HardwareAddr) != 6 {
		return netip.Addr{}, nil, errors.New("not an Ethernet interface: no MAC for a DUID-LL")
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return netip.Addr{}, nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() == nil && ipn.IP.IsGlobalUnicast() {
			ip, _ := netip.AddrFromSlice(ipn.IP)
			return ip, iface.HardwareAddr, nil
		}
	}
	return netip.Addr{}, nil, errors.New("no global or unique local IPv6 address on it (see ip -6 addr; link-local alone cannot be put in a boot file URL)")
}

// Listen opens a UDP socket on [::]:port bound to iface (SO_BINDTODEVICE)
// and, for port 547, joined to ff02::1:2 there, with errors that name
// the fix.
func Listen(iface string, port Port) (*net.UDPConn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("ProxyDHCPv6 on %s: %w", iface, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1),
				syscall.BindToDevice(int(fd), iface),
			)
		})
		return errors.Join(err, serr)
	}}
	addr := net.JoinHostPort("::", strconv.Itoa(int(port)))
	conn, err := lc.ListenPacket(context.Background(), "udp6", addr)
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("ProxyDHCPv6 %s on %s: %w: ports 547 and 4011 need root or CAP_NET_BIND_SERVICE (and CAP_NET_RAW before Linux 5.7, for SO_BINDTODEVICE)", addr, iface, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("ProxyDHCPv6 %s on %s: %w: another DHCPv6 server (dnsmasq?) holds the port", addr, iface, err)
	case err != nil:
		return nil, fmt.Errorf("ProxyDHCPv6 %s on %s: %w", addr, iface, err)
	}
	u := conn.(*net.UDPConn) // udp6 always gives one
	if port == ServerPort {
		if err := ipv6.NewPacketConn(u).JoinGroup(ifi, &net.UDPAddr{IP: allServers}); err != nil {
			u.Close()
			return nil, fmt.Errorf("ProxyDHCPv6 on %s: joining ff02::1:2: %w", iface, err)
		}
	}
	u.SetReadBuffer(4 << 20) // room for a burst of machines powered on together
	return u, nil
}

// Serve answers requests arriving on conn, which listens on port, until
// conn is closed, with one reader per CPU. Bad packets are counted and
// dropped; nothing in a packet can stop a reader.
func (s *Server) Serve(conn *net.UDPConn, port Port) error {
	label := strconv.Itoa(int(port))
	count := map[string]prometheus.Counter{}
	for _, result := range []string{"advertise", "reply", "ignored", "malformed", "oversized"} {
		count[result] = s.packets.WithLabelValues(label, result)
	}
	return udpserve.Serve(conn, maxPacket, count["oversized"].Inc, func(pkt []byte, peer netip.AddrPort) {
		s.handle(conn, port, count, pkt, peer)
	})
}

// handle answers one datagram.
func (s *Server) handle(conn *net.UDPConn, port Port, count map[string]prometheus.Counter, pkt []byte, peer netip.AddrPort) {
	ctx := context.Background()
	msg, err := dhcpv6.FromBytes(pkt)
	if err != nil {
		count["malformed"].Inc()
		return
	}
	reply, dst, why := s.answer(msg, peer, port)
	if reply == nil {
		count["ignored"].Inc()
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.Debug("dhcp6: no answer", "from", peer.String(), "port", port, "reason", why)
		}
		return
	}
	if _, err := conn.WriteToUDPAddrPort(reply.Msg.ToBytes(), dst); err != nil {
		s.log.Warn("dhcp6: reply not sent", "to", dst.String(), "err", err)
		return
	}
	result := "reply"
	if inner, err := innerType(reply.Msg); err == nil && inner == dhcpv6.MessageTypeAdvertise {
		result = "advertise"
	}
	count[result].Inc()
	if s.cfg.Timeline != nil {
		s.noteAnswer(reply, peer.Addr(), port)
	}
	if s.log.Enabled(ctx, slog.LevelInfo) {
		s.log.Info("dhcp6: "+result, "mac", macString(reply.Client.MAC), "file", reply.File, "to", dst.String())
	}
}

// answer decides for one parsed message from peer: the reply and where
// it goes, or why there is none. It keeps what it learns of the client's
// MAC for the client's next message.
func (s *Server) answer(msg dhcpv6.DHCPv6, peer netip.AddrPort, port Port) (*Reply, netip.AddrPort, Refusal) {
	req := Request{Msg: msg, From: peer.Addr(), Port: port}
	id := clientID(msg)
	if id != "" {
		req.Known = s.macs.get(id)
	}
	reply, why := Answer(req, s.snaps.Snapshot(), s.cfg)
	c := why.Client
	if reply != nil {
		c = reply.Client
	}
	if c.MAC != nil && (c.Vendor != "" || c.IPXE) {
		if id != "" {
			s.macs.put(id, c.MAC)
		}
		if s.cfg.Seen != nil {
			s.cfg.Seen(c.MAC.String())
		}
	}
	if reply == nil {
		if why.NoGroup && s.cfg.Timeline != nil {
			if mac, ok := timeline.MACOf(c.MAC); ok {
				s.cfg.Timeline.Unmatched(timeline.Client{MAC: mac, UUID: c.UUID, Arch: c.Arch, VendorClass: c.Vendor, Relay: c.Relay})
			}
		}
		return nil, netip.AddrPort{}, why
	}
	return reply, s.destination(msg, peer, port), why
}

// destination is where a reply goes: a relay's reply back to the relay's
// server port, the boot server's to the sender, else to the client port
// of the sender's (link-local) address.
func (s *Server) destination(msg dhcpv6.DHCPv6, peer netip.AddrPort, port Port) netip.AddrPort {
	switch {
	case msg.IsRelay():
		return netip.AddrPortFrom(peer.Addr(), uint16(ServerPort))
	case port == BootServerPort:
		return peer
	}
	return netip.AddrPortFrom(peer.Addr(), uint16(s.clientPort))
}

// noteAnswer tells the timeline of a reply sent, with the client's
// address when it is one its TFTP and HTTP requests will come from (the
// port-4011 Request's global source; not a link-local one or a relay).
func (s *Server) noteAnswer(reply *Reply, from netip.Addr, port Port) {
	mac, ok := timeline.MACOf(reply.Client.MAC)
	if !ok {
		return
	}
	stage, addr := timeline.StageOffer, netip.Addr{}
	if port == BootServerPort {
		stage = timeline.StageBootServer
		if !from.IsLinkLocalUnicast() {
			addr = from.WithZone("")
		}
	}
	s.cfg.Timeline.DHCP(mac, stage, addr, reply.File)
}

func innerType(d dhcpv6.DHCPv6) (dhcpv6.MessageType, error) {
	if m, ok := d.(*dhcpv6.Message); ok {
		return m.MessageType, nil
	}
	r, ok := d.(*dhcpv6.RelayMessage)
	if !ok {
		return 0, errors.New("neither a message nor a relay message")
	}
	m, err := r.GetInnerMessage()
	if err != nil {
		return 0, err
	}
	return m.MessageType, nil
}

// clientID is the client ID of the (innermost) message as a map key, ""
// when there is none.
func clientID(d dhcpv6.DHCPv6) string {
	m, ok := d.(*dhcpv6.Message)
	if !ok {
		r, isRelay := d.(*dhcpv6.RelayMessage)
		if !isRelay {
			return ""
		}
		var err error
		if m, err = r.GetInnerMessage(); err != nil {
			return ""
		}
	}
	if id := m.Options.ClientID(); id != nil {
		return string(id.ToBytes())
	}
	return ""
}

func macString(m net.HardwareAddr) string {
	if m == nil {
		return ""
	}
	return m.String()
}

// The MACs learned by client ID: bounded in entries and in time, so a
// flood of invented client IDs costs a fixed amount of memory.
const (
	maxLearned = 4096
	learnedTTL = 5 * time.Minute // a Solicit to the port-4011 Request is seconds
)

type learned struct {
	mu  sync.Mutex
	m   map[string]learnedMAC
	max int
	ttl time.Duration
	now func() time.Time
}

type learnedMAC struct {
	mac net.HardwareAddr
	at  time.Time
}

func newLearned(max int, ttl time.Duration, now func() time.Time) *learned {
	return &learned{m: map[string]learnedMAC{}, max: max, ttl: ttl, now: now}
}

func (l *learned) get(id string) net.HardwareAddr {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[id]
	if !ok || l.now().Sub(e.at) > l.ttl {
		return nil
	}
	return e.mac
}

func (l *learned) put(id string, mac net.HardwareAddr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if _, ok := l.m[id]; !ok && len(l.m) >= l.max {
		for k := range l.m { // map order is as good as random, and O(1)
			delete(l.m, k)
			break
		}
	}
	l.m[id] = learnedMAC{mac: append(net.HardwareAddr(nil), mac...), at: now}
}
