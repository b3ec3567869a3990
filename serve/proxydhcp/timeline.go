package proxydhcp

import (
	"encoding/hex"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

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
		c.Arch = archName(a[0])
	}
	c.VendorClass = req.ClassIdentifier()
	if len(c.VendorClass) > 128 {
		c.VendorClass = c.VendorClass[:128]
	}
	c.Relay, _ = netip.AddrFromSlice(req.GatewayIPAddr.To4())
	return c
}

// archName names option 93's architectures the way selectors and
// iPXE's ${buildarch} do; "" for BIOS, which could be either x86.
func archName(a iana.Arch) string {
	switch a {
	case iana.EFI_X86_64, iana.EFI_BC, iana.EFI_X86_64_HTTP:
		return "x86_64"
	case iana.EFI_ARM64, iana.EFI_ARM64_HTTP:
		return "arm64"
	case iana.EFI_IA32:
		return "i386"
	}
	return ""
}

// uuidOf reads option 97 (type 0, then 16 bytes) as the UUID iPXE's
// ${uuid} and dmidecode print: the firmware sends the SMBIOS bytes,
// whose first three fields are little-endian. All zeros (QEMU without
// -uuid) is no UUID.
func uuidOf(v []byte) string {
	if len(v) != 17 || v[0] != 0 {
		return ""
	}
	b := [16]byte(v[1:])
	if b == [16]byte{} {
		return ""
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
