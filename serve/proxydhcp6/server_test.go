package proxydhcp6

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

type fixed struct{ snap *render.Snapshot }

func (f fixed) Snapshot() *render.Snapshot { return f.snap }

type events struct {
	mu        sync.Mutex
	dhcp      []string
	unmatched []timeline.Client
}

func (e *events) DHCP(mac timeline.MAC, stage timeline.Stage, addr netip.Addr, file string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dhcp = append(e.dhcp, fmt.Sprintf("%s %d %s %s", net.HardwareAddr(mac[:]), stage, addr, file))
}

func (e *events) Unmatched(c timeline.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.unmatched = append(e.unmatched, c)
}

// Over loopback: a Solicit gets an Advertise at the client port, junk
// and non-PXE clients are counted and get nothing, and the metrics say so.
func TestServeLoopback(t *testing.T) {
	reg := prometheus.NewRegistry()
	tl := &events{}
	c := cfg
	c.Timeline = tl
	s := New(c, fixed{snapshot(t, known)}, nil, reg)
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	client, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s.clientPort = client.LocalAddr().(*net.UDPAddr).Port
	done := make(chan error, 1)
	go func() { done <- s.Serve(conn, ServerPort) }()

	send := func(b []byte) {
		if _, err := client.WriteToUDP(b, conn.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte{1, 2})                                                              // malformed
	send(append([]byte{1, 9, 9, 9}, append(opt(1, duidLLT), opt(8, u16(0))...)...)) // dhclient
	send(make([]byte, maxPacket+10))                                                // oversized
	send(edk2(1, duidLL, pxeX64, 7, nil))                                           // from ::1, the MAC from DUID-LL
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2000)
	n, _, err := client.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no Advertise: %v", err)
	}
	msg, err := dhcpv6.FromBytes(buf[:n])
	if err != nil || msg.Type() != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("got %v (%v), want an Advertise", msg, err)
	}
	if got := msg.(*dhcpv6.Message).Options.BootFileURL(); got != "tftp://[fd77::3]/snponly.efi" {
		t.Errorf("option 59 %q", got)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	for result, want := range map[string]float64{"advertise": 1, "ignored": 1, "malformed": 1, "oversized": 1} {
		if got := testutil.ToFloat64(s.packets.WithLabelValues("547", result)); got != want {
			t.Errorf("pxeops_dhcp6_packets_total{port=547,result=%s} = %v, want %v", result, got, want)
		}
	}
	if len(tl.dhcp) != 1 || tl.dhcp[0] != fmt.Sprintf("52:54:00:12:34:56 %d invalid IP tftp://[fd77::3]/snponly.efi", timeline.StageOffer) {
		t.Errorf("timeline: %q", tl.dhcp)
	}
}

// EDK2's flow: the Solicit from its EUI-64 link-local address teaches
// the MAC its DUID-UUID stands for, so the port-4011 Request from its
// new global address is answered, and the timeline ties that address to
// the MAC. Unknown machines are reported unmatched.
func TestLearnedMAC(t *testing.T) {
	tl := &events{}
	c := cfg
	c.Timeline = tl
	var seen []string
	c.Seen = func(mac string) { seen = append(seen, mac) }
	s := New(c, fixed{snapshot(t, known)}, nil, nil)
	parse := func(b []byte) dhcpv6.DHCPv6 {
		m, err := dhcpv6.FromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	boot := parse(edk2BootServer(ourDUID))
	if reply, _, why := s.answer(boot, netip.AddrPortFrom(station, 4011), BootServerPort); reply != nil || !strings.Contains(why.Reason, "MAC is unknown") {
		t.Fatalf("answered a port-4011 Request before its Solicit: %v %s", reply, why)
	}
	reply, dst, why := s.answer(parse(edk2(1, duidUUID, pxeX64, 7, nil)), netip.AddrPortFrom(linkLocal.WithZone("eth0"), 546), ServerPort)
	if reply == nil || dst != netip.AddrPortFrom(linkLocal.WithZone("eth0"), 546) {
		t.Fatalf("Solicit: %v to %v (%s)", reply, dst, why)
	}
	reply, dst, why = s.answer(boot, netip.AddrPortFrom(station, 4011), BootServerPort)
	if reply == nil || dst != netip.AddrPortFrom(station, 4011) || reply.File != "tftp://[fd77::3]/snponly.efi" {
		t.Fatalf("port-4011 Request after the Solicit: %v to %v (%s)", reply, dst, why)
	}
	s.noteAnswer(reply, station, BootServerPort)
	if want := fmt.Sprintf("52:54:00:12:34:56 %d fd77::10 tftp://[fd77::3]/snponly.efi", timeline.StageBootServer); len(tl.dhcp) != 1 || tl.dhcp[0] != want {
		t.Errorf("timeline %q, want %q", tl.dhcp, want)
	}
	if _, _, why := s.answer(parse(edk2(1, duidUUID, pxeX64, 7, nil)), netip.AddrPortFrom(netip.MustParseAddr("fe80::5054:ff:fe99:9999"), 546), ServerPort); !why.NoGroup {
		t.Errorf("unknown MAC: %s", why)
	}
	if len(tl.unmatched) != 1 || net.HardwareAddr(tl.unmatched[0].MAC[:]).String() != "52:54:00:99:99:99" || tl.unmatched[0].Arch != "x86_64" {
		t.Errorf("unmatched %+v", tl.unmatched)
	}
	if len(seen) != 3 {
		t.Errorf("Seen told %q, want three boot clients' MACs", seen)
	}
	// A relayed answer goes back to the relay's server port.
	relay := parse(relayed(edk2(1, duidUUID, pxeX64, 7, nil), net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}))
	if _, dst, why := s.answer(relay, netip.AddrPortFrom(netip.MustParseAddr("fd00:1::1"), 547), ServerPort); dst.Port() != 547 || dst.Addr().String() != "fd00:1::1" {
		t.Errorf("relay reply to %v (%s)", dst, why)
	}
}

func TestLearnedBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLearned(3, time.Minute, func() time.Time { return now })
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		l.put(id, mac)
	}
	if len(l.m) != 3 || l.get("e") == nil {
		t.Errorf("%d entries, newest %v; want 3 and the newest kept", len(l.m), l.get("e"))
	}
	now = now.Add(2 * time.Minute)
	if l.get("e") != nil {
		t.Error("an expired entry is still given")
	}
}
