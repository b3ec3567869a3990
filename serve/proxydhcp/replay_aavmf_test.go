package proxydhcp

import (
	"bytes"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// AAVMF (EDK2 for arm64, QEMU virt) captured in the lab
// (testdata/dhcp/README.md) gets the arm64 boot file once one is
// configured, on port 67 and on the boot server's port 4011 alike, and
// the arm64 shim (the GRUB route) when only that is.
func TestCapturedAAVMF(t *testing.T) {
	snap := snapshot(t, known)
	arm := cfg
	arm.ARM64File = "ipxe-arm64.efi"
	shim := cfg
	shim.ARM64ShimFile = "shimaa64.efi"
	for _, c := range []struct {
		file  string
		port  Port
		class string
		arch  iana.Arch
		msg   dhcpv4.MessageType
		boot  string
		shim  string
	}{
		{"aavmf-discover", ProxyPort, "PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64, dhcpv4.MessageTypeOffer, "ipxe-arm64.efi", "shimaa64.efi"},
		{"aavmf-request", ProxyPort, "PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64, dhcpv4.MessageTypeAck, "ipxe-arm64.efi", "shimaa64.efi"},
		{"aavmf-request-4011", BootServerPort, "PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64, dhcpv4.MessageTypeAck, "ipxe-arm64.efi", "shimaa64.efi"},
		{"aavmf-http-discover", ProxyPort, "HTTPClient:Arch:00019:UNDI:003000", iana.EFI_ARM64_HTTP, dhcpv4.MessageTypeOffer, "http://10.77.0.3:8080/ipxe-bin/ipxe-arm64.efi", "http://10.77.0.3:8080/loader/shimaa64.efi"},
	} {
		req := capture(t, c.file)
		if got := req.ClientArch(); len(got) != 1 || got[0] != c.arch {
			t.Errorf("%s: option 93 = %v, want [%s]", c.file, got, c.arch)
		}
		if got := req.ClassIdentifier(); got != c.class {
			t.Errorf("%s: option 60 = %q, want %q", c.file, got, c.class)
		}
		if got := req.ClientHWAddr.String(); got != "52:54:00:12:34:56" {
			t.Errorf("%s: chaddr %s", c.file, got)
		}
		if reply, why := Answer(req, c.port, snap, cfg); reply != nil || why.Reason == "" {
			t.Errorf("%s: answered with no arm64 file configured: %v", c.file, reply)
		}
		if reply, why := Answer(req, c.port, snap, shim); reply == nil || reply.BootFileName != c.shim {
			t.Errorf("%s: with only the arm64 shim: %v (%s), want boot file %q", c.file, reply, why, c.shim)
		}
		reply, why := Answer(req, c.port, snap, arm)
		if reply == nil {
			t.Errorf("%s: no answer: %s", c.file, why)
			continue
		}
		checkProxyReply(t, c.file, req, reply)
		if reply.BootFileName != c.boot || reply.MessageType() != c.msg {
			t.Errorf("%s: file %q type %s; want %q %s", c.file, reply.BootFileName, reply.MessageType(), c.boot, c.msg)
		}
		if !reply.ServerIdentifier().Equal(cfg.ServerIP) || !reply.ServerIPAddr.Equal(cfg.ServerIP) {
			t.Errorf("%s: option 54 %v siaddr %v, want %v", c.file, reply.ServerIdentifier(), reply.ServerIPAddr, cfg.ServerIP)
		}
		if reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation) != nil {
			t.Errorf("%s: UEFI got option 43", c.file)
		}
		if g := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); g != nil && !bytes.Equal(reply.GetOneOption(dhcpv4.OptionClientMachineIdentifier), g) {
			t.Errorf("%s: option 97 not echoed", c.file)
		}
	}
}
