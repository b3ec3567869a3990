// Package proxydhcp decides what pxeops answers to DHCP traffic as a
// ProxyDHCP server (port 67) and PXE boot server (port 4011): never an
// address, only where to boot from, and only to PXE and HTTP-boot clients
// that some group of the served snapshot could match.
package proxydhcp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Config is what answers need besides the snapshot.
type Config struct {
	// ServerIP is the address of the interface the request came in on:
	// siaddr and option 54.
	ServerIP net.IP
	// ServerURL is pxeops' HTTP base URL; iPXE clients chain to
	// ServerURL/boot.ipxe, UEFI HTTP-boot clients fetch the iPXE binary
	// from ServerURL/ipxe-bin/.
	ServerURL string
	// Boot files on the TFTP server, by firmware.
	BIOSFile  string // undionly.kpxe
	EFIFile   string // ipxe.efi or snponly.efi (x86-64 UEFI)
	ARM64File string // arm64 UEFI; empty: arm64 machines get the GRUB route or nothing
	// Shim binaries on the TFTP server (and under ServerURL/loader/), by
	// UEFI architecture: what machines whose loader is GRUB get first,
	// and every arm64 machine when there is no arm64 iPXE. Empty: that
	// architecture has no GRUB route.
	ShimFile      string // shimx64.efi
	ARM64ShimFile string // shimaa64.efi
	// Learn, when set, is told of each port-4011 request answered whose
	// sender is the address it claims (ciaddr): the MAC booting from
	// that address, which the HTTP server's access rule trusts for the
	// script a routed machine asks for next.
	Learn func(mac string, ip netip.Addr)
	// Seen, when set, is told the MAC of each PXE or HTTP-boot client's
	// request before it is answered, matched or not: where what a
	// machine boots is asked of someone else when it shows up (Pixiecore's
	// API mode). It must not block.
	Seen func(mac string)
	// Timeline, when set, is told of each answer sent and of each PXE
	// client no group could match (Refusal.NoGroup). It must not block.
	Timeline Timeline
}

// Timeline records what ProxyDHCP did for a machine (timeline.Recorder).
type Timeline interface {
	DHCP(mac timeline.MAC, stage timeline.Stage, addr netip.Addr, file string)
	Unmatched(timeline.Client)
}

// Refusal says why Answer gave no reply.
type Refusal struct {
	Reason string // for the log; "" when there is a reply
	// NoGroup: a PXE client no group of the served snapshot could
	// match, which another boot server may answer, or one to discover.
	NoGroup bool
}

func (r Refusal) String() string { return r.Reason }

func refused(reason string) Refusal { return Refusal{Reason: reason} }

// Port says where a request arrived.
type Port int

const (
	ProxyPort      Port = 67   // ProxyDHCP: DISCOVER and REQUEST broadcasts
	BootServerPort Port = 4011 // PXE boot server: EDK2's REQUEST after a proxy offer
)

// maxBootFile is what the BOOTP file field holds; longer names are cut.
const maxBootFile = 127

// Answer returns the reply to req, or nil and why there is none. A nil
// snapshot (nothing served yet) answers nobody.
func Answer(req *dhcpv4.DHCPv4, port Port, snap *render.Snapshot, cfg Config) (*dhcpv4.DHCPv4, Refusal) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, refused("not a request")
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return nil, refused("not an Ethernet client")
	}
	mt := req.MessageType()
	switch {
	case port == ProxyPort && (mt == dhcpv4.MessageTypeDiscover || mt == dhcpv4.MessageTypeRequest):
	case port == BootServerPort && mt == dhcpv4.MessageTypeRequest:
	default:
		return nil, refused(fmt.Sprintf("message type %s on port %d is not for a boot server", mt, port))
	}
	class := req.ClassIdentifier()
	vendor := vendorOf(class)
	if vendor == "" {
		return nil, refused("not a PXE client (option 60 is " + fmt.Sprintf("%q", class) + "); the site's DHCP server answers it")
	}
	mac := req.ClientHWAddr.String()
	arch, file, why := bootFile(req, cfg)
	if why != "" {
		return nil, refused(why)
	}
	if snap == nil {
		return nil, refused("no config served yet")
	}
	if !snap.MayServe(mac, arch) {
		return nil, Refusal{Reason: "no group matches " + mac + "; another boot server may answer it", NoGroup: true}
	}
	if file, why = loader(req, snap, mac, arch, file, cfg); why != "" {
		return nil, refused(why)
	}
	if len(file) > maxBootFile {
		return nil, refused(fmt.Sprintf("boot file name %q is longer than the %d bytes BOOTP holds", file, maxBootFile))
	}
	// Built by hand rather than with dhcpv4.NewReplyFromRequest, which
	// draws a transaction id from crypto/rand only to overwrite it: at
	// thousands of packets a second that was an eighth of the work.
	reply := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero, // a proxy never hands out an address
		ServerIPAddr:  cfg.ServerIP,
		GatewayIPAddr: req.GatewayIPAddr,
		BootFileName:  file,
		Options:       dhcpv4.Options{}, // and carries no lease, mask or router
	}
	if reply.GatewayIPAddr == nil {
		reply.GatewayIPAddr = net.IPv4zero
	}
	// RFC 6842 and RFC 3046: client identifier and relay agent
	// information go back as they came.
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionClientIdentifier, dhcpv4.OptionRelayAgentInformation} {
		if v := req.GetOneOption(code); v != nil {
			reply.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	msg := dhcpv4.MessageTypeOffer
	if mt == dhcpv4.MessageTypeRequest {
		msg = dhcpv4.MessageTypeAck
	}
	reply.UpdateOption(dhcpv4.OptMessageType(msg))
	reply.UpdateOption(dhcpv4.OptServerIdentifier(cfg.ServerIP))
	reply.UpdateOption(dhcpv4.OptClassIdentifier(vendor))
	if guid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	// BIOS PXE ROMs show a boot menu unless told to skip discovery
	// (sub-option 6 = 8). UEFI gets no option 43: EDK2 then asks the boot
	// server on port 4011, which answers with the same file.
	if port == ProxyPort && arch == "" && !isIPXE(req) {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 255}))
	}
	return reply, Refusal{}
}

// vendorOf is the vendor class a boot client's option 60 starts with,
// "" for any other client.
func vendorOf(class string) string {
	for _, v := range []string{"PXEClient", "HTTPClient"} {
		if strings.HasPrefix(class, v) {
			return v
		}
	}
	return ""
}

// bootClient reports a PXE or HTTP-boot client's request.
func bootClient(req *dhcpv4.DHCPv4) bool {
	return req.OpCode == dhcpv4.OpcodeBootRequest && len(req.ClientHWAddr) == 6 && vendorOf(req.ClassIdentifier()) != ""
}

// loader decides between iPXE (file, from bootFile) and the GRUB route
// for a UEFI client that is not iPXE yet: the machine's group chooses,
// and arm64 machines without an arm64 iPXE take the GRUB route.
func loader(req *dhcpv4.DHCPv4, snap *render.Snapshot, mac, arch, file string, cfg Config) (string, string) {
	if arch == "" || isIPXE(req) {
		return file, "" // BIOS has no shim; iPXE is past the first loader
	}
	shim := cfg.ShimFile
	if arch == "arm64" {
		shim = cfg.ARM64ShimFile
	}
	grub := file == "" || snap.Loader(mac, arch) == render.LoaderGRUB
	switch {
	case !grub:
		return file, ""
	case shim == "" && file == "":
		return "", arch + " UEFI client and no " + arch + " iPXE binary or shim configured"
	case shim == "":
		return "", "the machine's loader is grub and no " + arch + " shim is configured; iPXE would be refused under Secure Boot"
	}
	if isHTTPBoot(req) {
		// The same path as httpserver.LoaderPath; shim asks for GRUB
		// beside itself.
		return strings.TrimSuffix(cfg.ServerURL, "/") + "/loader/" + shim, ""
	}
	return shim, ""
}

func isHTTPBoot(req *dhcpv4.DHCPv4) bool {
	return strings.HasPrefix(req.ClassIdentifier(), "HTTPClient")
}

// bootFile picks the iPXE file for the client's firmware (option 93) and
// whether it already runs iPXE; arch is the snapshot's name for the
// architecture, "" for BIOS (which could be either x86 flavour). file is
// empty for arm64 without an arm64 iPXE; why is set for a client never
// served.
func bootFile(req *dhcpv4.DHCPv4, cfg Config) (arch, file, why string) {
	archType := iana.INTEL_X86PC // PXE ROMs without option 93 are BIOS
	if a := req.ClientArch(); len(a) > 0 {
		archType = a[0]
	}
	switch archType {
	case iana.INTEL_X86PC:
		arch, file = "", cfg.BIOSFile
	case iana.EFI_X86_64, iana.EFI_BC:
		arch, file = "x86_64", cfg.EFIFile
	case iana.EFI_ARM64:
		arch, file = "arm64", cfg.ARM64File
	case iana.EFI_X86_64_HTTP, iana.EFI_ARM64_HTTP:
		arch, file = "x86_64", cfg.EFIFile
		if archType == iana.EFI_ARM64_HTTP {
			arch, file = "arm64", cfg.ARM64File
		}
		if file != "" {
			// HTTP boot fetches the binary itself, by URL, and runs it.
			file = strings.TrimSuffix(cfg.ServerURL, "/") + "/ipxe-bin/" + file
		}
	default:
		return "", "", fmt.Sprintf("client architecture %s (option 93) is not served", archType)
	}
	if isIPXE(req) {
		file = strings.TrimSuffix(cfg.ServerURL, "/") + "/boot.ipxe"
	}
	return arch, file, ""
}

// isIPXE tells iPXE by its user class (option 77) or its own option 175;
// never by option 60, which iPXE sets to PXEClient too.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	return bytes.Contains(req.GetOneOption(dhcpv4.OptionUserClassInformation), []byte("iPXE")) ||
		req.GetOneOption(dhcpv4.GenericOptionCode(175)) != nil
}
