package timeline

import (
	"encoding/hex"

	"github.com/insomniacslk/dhcp/iana"
)

// ArchName names a client architecture (DHCPv4 option 93, DHCPv6
// option 61) the way selectors and iPXE's ${buildarch} do; "" for BIOS,
// which could be either x86, and for the rest.
func ArchName(a iana.Arch) string {
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

// SMBIOSUUID prints the UUID firmware sends (DHCPv4 option 97, a DHCPv6
// DUID-UUID) as iPXE's ${uuid} and dmidecode do: the bytes are the
// SMBIOS GUID, whose first three fields are little-endian. All zeros
// (QEMU without -uuid) is no UUID.
func SMBIOSUUID(b [16]byte) string {
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
