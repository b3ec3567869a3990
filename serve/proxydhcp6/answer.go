// Package proxydhcp6 decides what pxeops answers to DHCPv6 traffic as a
// proxy (port 547) and PXE boot server (port 4011): never an address (no
// IA_NA, no IA_TA), only where to boot from, and only to PXE, HTTP-boot
// and iPXE clients that some group of the served snapshot could serve.
// The site's DHCPv6 server (or router advertisements) gives addresses.
//
// What EDK2 does with such an answer (NetworkPkg, UefiPxeBcDxe and
// HttpBootDxe): an Advertise with no IA_NA is a "proxy offer"; with a
// vendor class whose data is "PXEClient" (enterprise 343) it is a BINL
// proxy offer, and after the site's server has given the address EDK2
// sends a Request from port 4011 to the address in option 59's
// tftp://[addr]/file, port 4011, carrying our server ID, and boots the
// option 59 of that Reply. An Advertise with "HTTPClient" and an http://
// option 59 is used as it is. Dhcp6Dxe drops any message whose client ID
// is not its own or that has no server ID, or a status code other than
// success; a preference of 255 would make it stop collecting offers, so
// none is sent.
package proxydhcp6

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Port says where a request arrived.
type Port int

const (
	ServerPort     Port = 547  // Solicit, Request, Information-request (and relays)
	BootServerPort Port = 4011 // EDK2's Request after a proxy's Advertise
)

// Config is what answers need besides the snapshot.
type Config struct {
	// ServerIP is the interface's IPv6 address clients reach (global or
	// ULA, not link-local): the host of tftp:// boot file URLs, where
	// EDK2 sends its port-4011 request.
	ServerIP netip.Addr
	// ServerMAC is the interface's MAC: our server ID is its DUID-LL.
	ServerMAC net.HardwareAddr
	// ServerURL is pxeops' HTTP base URL as IPv6 clients reach it
	// (http://[addr]:port): iPXE chains to ServerURL/boot.ipxe, HTTP-boot
	// clients fetch the iPXE binary from ServerURL/ipxe-bin/.
	ServerURL string
	// The iPXE binaries on the TFTP server, by UEFI architecture; empty
	// ARM64File: arm64 machines get nothing. (BIOS has no IPv6 PXE, and
	// the GRUB route is not offered over IPv6: such machines are refused.)
	EFIFile   string // snponly.efi or ipxe.efi (x86-64 UEFI)
	ARM64File string
	// Seen, when set, is told the MAC of each boot client's request
	// before it is answered, matched or not. It must not block.
	Seen func(mac string)
	// Timeline, when set, is told of each answer sent and of each boot
	// client no group could match. It must not block.
	Timeline Timeline
}

// Timeline records what ProxyDHCPv6 did for a machine (timeline.Recorder).
type Timeline interface {
	DHCP(mac timeline.MAC, stage timeline.Stage, addr netip.Addr, file string)
	Unmatched(timeline.Client)
}

// Request is one message as it arrived.
type Request struct {
	Msg  dhcpv6.DHCPv6 // a client message or a Relay-forward
	From netip.Addr    // the sender: the client (link-local on 547) or a relay
	Port Port
	// Known is the client's MAC as the server learned it from an earlier
	// message with the same client ID (its Solicit's link-local source):
	// EDK2's port-4011 Request comes from its new global address with a
	// DUID-UUID, neither of which says the MAC. Used when the message
	// itself gives none.
	Known net.HardwareAddr
}

// Reply is an answer and what it was for.
type Reply struct {
	Msg dhcpv6.DHCPv6 // Advertise or Reply, in a Relay-reply when relayed
	// Client is who asked; File is option 59.
	Client Client
	File   string
}

// Client is what a request tells of the machine behind it.
type Client struct {
	MAC        net.HardwareAddr // nil when no option, DUID or address gives it
	UUID       string           // from a DUID-UUID
	Arch       string           // the snapshot's name; "" for iPXE, which sends no option 61
	Vendor     string           // "PXEClient", "HTTPClient", "" for iPXE
	Enterprise uint32           // of the vendor class, echoed
	IPXE       bool
	Relay      netip.Addr // the relay nearest the client, if any
	archType   iana.Arch
}

// Refusal says why Answer gave no reply.
type Refusal struct {
	Reason  string // for the log; "" when there is a reply
	NoGroup bool   // a boot client no group of the snapshot could match
	Client  Client // what was read of the client, as far as it got
}

func (r Refusal) String() string { return r.Reason }

// maxRelayHops bounds the relay chain read; RFC 8415's HOP_COUNT_LIMIT is
// 32, but real PXE networks have one relay or two.
const maxRelayHops = 8

// maxURL bounds option 59: what EDK2's PXE code copies from it and more
// than any file name of ours needs.
const maxURL = 255

// Answer returns the reply to req, or nil and why there is none. A nil
// snapshot (nothing served yet) answers nobody.
func Answer(req Request, snap *render.Snapshot, cfg Config) (*Reply, Refusal) {
	msg, relays, why := unwrap(req)
	if why != "" {
		return nil, Refusal{Reason: why}
	}
	c, why := identify(msg, relays, req.From)
	if c.MAC == nil && len(req.Known) == 6 {
		c.MAC = req.Known
	}
	if why != "" {
		return nil, Refusal{Reason: why, Client: c}
	}
	refuse := func(format string, a ...any) (*Reply, Refusal) {
		return nil, Refusal{Reason: fmt.Sprintf(format, a...), Client: c}
	}
	reply := dhcpv6.MessageTypeReply
	switch mt := msg.MessageType; {
	case mt == dhcpv6.MessageTypeSolicit && req.Port == ServerPort:
		reply = dhcpv6.MessageTypeAdvertise
		if msg.Options.ServerID() != nil {
			return refuse("a Solicit with a server ID is malformed (RFC 8415 16.2)")
		}
	case mt == dhcpv6.MessageTypeRequest && req.Port == BootServerPort,
		mt == dhcpv6.MessageTypeRequest && req.Port == ServerPort:
		if !ours(msg, cfg) {
			return refuse("a Request for another server")
		}
	case mt == dhcpv6.MessageTypeInformationRequest && req.Port == ServerPort:
		if msg.Options.ServerID() != nil && !ours(msg, cfg) {
			return refuse("an Information-request for another server")
		}
	default:
		return refuse("message type %s on port %d is not for a boot server", mt, req.Port)
	}
	if len(relays) > 0 && req.Port != ServerPort {
		return refuse("a relayed message on port %d", req.Port)
	}
	file, why := bootFile(c, cfg)
	if why != "" {
		return refuse("%s", why)
	}
	if snap == nil {
		return refuse("no config served yet")
	}
	mac := ""
	if c.MAC != nil {
		mac = c.MAC.String()
	}
	if !snap.MayServe(mac, c.Arch) {
		who := mac
		if who == "" {
			who = "a client whose MAC is unknown (DUID-UUID " + c.UUID + ")"
		}
		return nil, Refusal{Reason: "no group matches " + who + "; another boot server may answer it", NoGroup: true, Client: c}
	}
	if c.Arch != "" && !c.IPXE && snap.Loader(mac, c.Arch) == render.LoaderGRUB {
		return refuse("the machine's loader is grub, which pxeops does not offer over IPv6")
	}
	if len(file) > maxURL {
		return refuse("boot file URL %q is longer than %d bytes", file, maxURL)
	}
	out := &dhcpv6.Message{MessageType: reply, TransactionID: msg.TransactionID}
	// Option order matters: EDK2's HTTP boot reads option 59 as a C
	// string, so it must be followed by an option whose code's first
	// byte is 0 (vendor class, 16), never end the packet.
	out.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionClientID, OptionData: msg.Options.ClientID().ToBytes()})
	out.AddOption(dhcpv6.OptServerID(serverDUID(cfg)))
	out.AddOption(dhcpv6.OptBootFileURL(file))
	vendor := c.Vendor
	enterprise := c.Enterprise
	if vendor == "" { // iPXE: none asked, one is harmless and says who answers
		vendor, enterprise = "PXEClient", pxeEnterprise
	}
	out.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: enterprise, Data: [][]byte{[]byte(vendor)}})
	var wire dhcpv6.DHCPv6 = out
	if len(relays) > 0 {
		var err error
		if wire, err = dhcpv6.NewRelayReplFromRelayForw(relays[0], out); err != nil {
			return refuse("relay reply: %v", err)
		}
	}
	return &Reply{Msg: wire, Client: c, File: file}, Refusal{}
}

// pxeEnterprise is the enterprise number EDK2 (and iPXE) put in the
// vendor class, Intel's, and the one EDK2 checks in a PXE offer.
const pxeEnterprise = 343

// serverDUID is our server ID: DUID-LL of the interface's MAC.
func serverDUID(cfg Config) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: cfg.ServerMAC}
}

// ours reports a message naming our server ID.
func ours(msg *dhcpv6.Message, cfg Config) bool {
	id := msg.Options.ServerID()
	return id != nil && bytes.Equal(id.ToBytes(), serverDUID(cfg).ToBytes())
}

// unwrap returns the client message of req and the Relay-forwards around
// it, outermost first.
func unwrap(req Request) (*dhcpv6.Message, []*dhcpv6.RelayMessage, string) {
	var relays []*dhcpv6.RelayMessage
	d := req.Msg
	for d != nil && d.IsRelay() {
		r, ok := d.(*dhcpv6.RelayMessage)
		if !ok || r.MessageType != dhcpv6.MessageTypeRelayForward {
			return nil, nil, "not a Relay-forward"
		}
		if len(relays) == maxRelayHops {
			return nil, nil, fmt.Sprintf("more than %d relays", maxRelayHops)
		}
		relays = append(relays, r)
		d = r.Options.RelayMessage()
		if d == nil {
			return nil, nil, "a Relay-forward without a relay message option"
		}
	}
	m, ok := d.(*dhcpv6.Message)
	if !ok || m == nil {
		return nil, nil, "no client message"
	}
	return m, relays, ""
}

// identify reads who the client is and whether it is a boot client.
func identify(msg *dhcpv6.Message, relays []*dhcpv6.RelayMessage, from netip.Addr) (Client, string) {
	var c Client
	id := msg.Options.ClientID()
	if id == nil {
		return c, "no client ID"
	}
	for _, vc := range msg.Options.VendorClasses() {
		for _, data := range vc.Data {
			for _, v := range []string{"PXEClient", "HTTPClient"} {
				if c.Vendor == "" && bytes.HasPrefix(data, []byte(v)) {
					c.Vendor, c.Enterprise = v, vc.EnterpriseNumber
				}
			}
		}
	}
	for _, uc := range msg.Options.UserClasses() {
		if bytes.Equal(uc, []byte("iPXE")) {
			c.IPXE = true
		}
	}
	peer := from
	if len(relays) > 0 {
		inner := relays[len(relays)-1]
		c.Relay, _ = netip.AddrFromSlice(inner.LinkAddr)
		if c.Relay.IsUnspecified() {
			c.Relay, _ = netip.AddrFromSlice(relays[0].LinkAddr)
		}
		peer, _ = netip.AddrFromSlice(inner.PeerAddr)
		// RFC 6939: the first relay (nearest the client) adds it.
		if ht, lla := inner.Options.ClientLinkLayerAddress(); ht == iana.HWTypeEthernet && len(lla) == 6 {
			c.MAC = lla
		}
	}
	switch d := id.(type) {
	case *dhcpv6.DUIDLL:
		if c.MAC == nil && d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			c.MAC = d.LinkLayerAddr
		}
	case *dhcpv6.DUIDLLT:
		if c.MAC == nil && d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			c.MAC = d.LinkLayerAddr
		}
	case *dhcpv6.DUIDUUID:
		c.UUID = timeline.SMBIOSUUID(d.UUID)
	}
	if c.MAC == nil {
		c.MAC = eui64MAC(peer)
	}
	if c.Vendor == "" && !c.IPXE {
		return c, "not a PXE client (no PXEClient or HTTPClient vendor class, no iPXE user class); the site's DHCPv6 server answers it"
	}
	if archs := msg.Options.ArchTypes(); len(archs) > 0 {
		c.archType = archs[0]
		c.Arch = timeline.ArchName(archs[0])
	} else if !c.IPXE {
		return c, "no client architecture (option 61)"
	}
	return c, ""
}

// bootFile picks option 59 for the client, as the IPv4 answer picks the
// boot file: iPXE chains to the script, PXE gets the iPXE binary by TFTP,
// HTTP boot by HTTP.
func bootFile(c Client, cfg Config) (string, string) {
	base := strings.TrimSuffix(cfg.ServerURL, "/")
	if c.IPXE {
		return base + "/boot.ipxe", ""
	}
	var file string
	http := false
	switch c.archType {
	case iana.EFI_X86_64, iana.EFI_BC:
		file = cfg.EFIFile
	case iana.EFI_ARM64:
		file = cfg.ARM64File
	case iana.EFI_X86_64_HTTP:
		file, http = cfg.EFIFile, true
	case iana.EFI_ARM64_HTTP:
		file, http = cfg.ARM64File, true
	default:
		return "", fmt.Sprintf("client architecture %s (option 61) is not served over IPv6", c.archType)
	}
	if file == "" {
		return "", c.Arch + " UEFI client and no " + c.Arch + " iPXE binary configured"
	}
	if http != (c.Vendor == "HTTPClient") {
		return "", fmt.Sprintf("vendor class %s with architecture %s", c.Vendor, c.archType)
	}
	if http {
		return base + "/ipxe-bin/" + file, ""
	}
	if !cfg.ServerIP.Is6() || cfg.ServerIP.Is4In6() {
		return "", "no IPv6 server address for a tftp:// URL"
	}
	return "tftp://[" + cfg.ServerIP.WithZone("").String() + "]/" + file, ""
}

// eui64MAC is the MAC inside a link-local address formed by modified
// EUI-64 (RFC 4291 appendix A), as EDK2 and iPXE form theirs; nil for
// any other address.
func eui64MAC(a netip.Addr) net.HardwareAddr {
	if !a.Is6() || !a.IsLinkLocalUnicast() {
		return nil
	}
	b := a.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil
	}
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
}
