package proxydhcp

import (
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/pxeops/pxeops/serve/timeline"
)

// noteAnswer tells the timeline of a reply sent, with the address the
// client has (ciaddr) or asks for (option 50): what ties its later TFTP
// and HTTP requests, which carry no MAC, to it.
func (s *Server) noteAnswer(req *dhcpv4.DHCPv4, port Port, reply *dhcpv4.DHCPv4) {
	mac, ok := timeline.MACOf(req.ClientHWAddr)
	if !ok {
		return
	}
	addr, _ := netip.AddrFromSlice(req.ClientIPAddr.To4())
	if !addr.IsValid() || addr.IsUnspecified() {
		if v := req.GetOneOption(dhcpv4.OptionRequestedIPAddress); len(v) == 4 {
			addr = netip.AddrFrom4([4]byte(v))
		}
	}
	stage := timeline.StageOffer
	if port == BootServerPort {
		stage = timeline.StageBootServer
	}
	s.cfg.Timeline.DHCP(mac, stage, addr, reply.BootFileName)
}

// clientOf is what an unmatched request tells of its client. Only for
// requests Answer refused with NoGroup: an Ethernet PXE client.
func clientOf(req *dhcpv4.DHCPv4) timeline.Client {
	var c timeline.Client
	c.MAC, _ = timeline.MACOf(req.ClientHWAddr)
	c.UUID = uuidOf(req.GetOneOption(dhcpv4.OptionClientMachineIdentifier))
	if a := req.ClientArch(); len(a) > 0 {
		c.Arch = timeline.ArchName(a[0])
	}
	c.VendorClass = req.ClassIdentifier()
	if len(c.VendorClass) > 128 {
		c.VendorClass = c.VendorClass[:128]
	}
	c.Relay, _ = netip.AddrFromSlice(req.GatewayIPAddr.To4())
	return c
}

// uuidOf reads option 97: type 0, then the 16 bytes of the SMBIOS GUID.
func uuidOf(v []byte) string {
	if len(v) != 17 || v[0] != 0 {
		return ""
	}
	return timeline.SMBIOSUUID([16]byte(v[1:]))
}
