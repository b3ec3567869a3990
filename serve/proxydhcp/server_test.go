package proxydhcp

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxeops/pxeops/render"
)

type fixed struct{ snap *render.Snapshot }

func (f fixed) Snapshot() *render.Snapshot { return f.snap }

// On loopback: the boot-server reply goes back to the sender, a relayed
// request's reply to the relay; garbage is counted and does not stop the
// loop.
func TestServeOnLoopback(t *testing.T) {
	s := New(cfg, fixed{snapshot(t, known)}, nil, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s.relayPort = client.LocalAddr().(*net.UDPAddr).Port
	go s.Serve(conn, BootServerPort)

	send := func(b []byte) { client.WriteTo(b, conn.LocalAddr()) }
	recv := func() *dhcpv4.DHCPv4 {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := client.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send([]byte("garbage"))
	send(make([]byte, 3000))
	req := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	send(req.ToBytes())
	if m := recv(); m.TransactionID != req.TransactionID || m.BootFileName != "ipxe.efi" || m.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("boot-server reply: %v", m)
	}
	relayed := request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7)
	relayed.GatewayIPAddr = net.IPv4(127, 0, 0, 1)
	send(relayed.ToBytes())
	if m := recv(); m.TransactionID != relayed.TransactionID {
		t.Errorf("relayed reply: %v", m)
	}
	// Readers run in parallel, so the bad packets may be counted after
	// the good ones were answered.
	for result, want := range map[string]float64{"malformed": 1, "oversized": 1, "ack": 2} {
		deadline := time.Now().Add(3 * time.Second)
		for testutil.ToFloat64(s.packets.WithLabelValues("4011", result)) < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := testutil.ToFloat64(s.packets.WithLabelValues("4011", result)); got != want {
			t.Errorf("%s packets: %v, want %v", result, got, want)
		}
	}
}
