package proxydhcp6

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// The firmware's own packets (testdata/README.md) get the answers it
// booted with in the lab.
func TestCapturedRequests(t *testing.T) {
	snap := snapshot(t, known)
	lab := cfg
	lab.ServerMAC = net.HardwareAddr{0x1e, 0x85, 0x1a, 0xb1, 0x96, 0x40} // that run's server ID
	want := map[string]struct {
		from netip.Addr
		port Port
		mt   dhcpv6.MessageType
		file string
	}{
		"ovmf-solicit":      {linkLocal, ServerPort, dhcpv6.MessageTypeAdvertise, "tftp://[fd77::3]/snponly.efi"},
		"ovmf-request-4011": {station, BootServerPort, dhcpv6.MessageTypeReply, "tftp://[fd77::3]/snponly.efi"},
		"ovmf-http-solicit": {linkLocal, ServerPort, dhcpv6.MessageTypeAdvertise, "http://[fd77::3]:8080/ipxe-bin/snponly.efi"},
		"ipxe-solicit":      {linkLocal, ServerPort, dhcpv6.MessageTypeAdvertise, "http://[fd77::3]:8080/boot.ipxe"},
	}
	caps := captures(t)
	if len(caps) != len(want) {
		t.Fatalf("%d captures in testdata, want %d", len(caps), len(want))
	}
	for _, c := range caps {
		w, ok := want[c.name]
		if !ok {
			t.Errorf("%s: a capture this test does not know", c.name)
			continue
		}
		msg, err := dhcpv6.FromBytes(c.data)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		reply, why := Answer(Request{Msg: msg, From: w.from, Port: w.port}, snap, lab)
		if reply == nil {
			t.Errorf("%s: no answer: %s", c.name, why)
			continue
		}
		if reply.File != w.file || reply.Client.MAC.String() != "52:54:00:12:34:56" {
			t.Errorf("%s: file %q for %s, want %q for 52:54:00:12:34:56", c.name, reply.File, reply.Client.MAC, w.file)
		}
		vendor := reply.Client.Vendor
		if vendor == "" {
			vendor = "PXEClient"
		}
		ourID := append([]byte{0, 3, 0, 1}, lab.ServerMAC...)
		checkWireAs(t, c.data, reply.Msg.ToBytes(), w.mt, w.file, vendor, ourID)
	}
}
