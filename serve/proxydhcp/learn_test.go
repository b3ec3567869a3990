package proxydhcp

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// A port-4011 request teaches the access rule the MAC's address only
// when it comes from the address it claims and was answered.
func TestLearnFromBootServer(t *testing.T) {
	type seen struct {
		mac string
		ip  netip.Addr
	}
	var mu sync.Mutex
	var learned []seen
	c := cfg
	c.Learn = func(mac string, ip netip.Addr) { mu.Lock(); learned = append(learned, seen{mac, ip}); mu.Unlock() }
	s := New(c, fixed{snapshot(t, known)}, nil, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go s.Serve(conn, BootServerPort)
	client, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	exchange := func(req *dhcpv4.DHCPv4) bool {
		t.Helper()
		client.WriteTo(req.ToBytes(), conn.LocalAddr())
		client.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _, err := client.ReadFrom(make([]byte, 1500))
		return err == nil
	}
	honest := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	honest.ClientIPAddr = net.IPv4(127, 0, 0, 2)
	liar := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	liar.ClientIPAddr = net.IPv4(127, 0, 0, 9) // claims an address it does not send from
	none := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	stranger := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	stranger.ClientHWAddr, _ = net.ParseMAC("52:54:00:aa:bb:cc") // no group: not answered
	stranger.ClientIPAddr = net.IPv4(127, 0, 0, 2)
	for name, c := range map[string]struct {
		req    *dhcpv4.DHCPv4
		answer bool
	}{"honest": {honest, true}, "liar": {liar, true}, "no ciaddr": {none, true}, "stranger": {stranger, false}} {
		if got := exchange(c.req); got != c.answer {
			t.Errorf("%s: answered %v, want %v", name, got, c.answer)
		}
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(learned) != 1 || learned[0] != (seen{"52:54:00:12:34:56", netip.MustParseAddr("127.0.0.2")}) {
		t.Errorf("learned %v, want only 52:54:00:12:34:56 at 127.0.0.2", learned)
	}
}
