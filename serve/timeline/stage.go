package timeline

import (
	"encoding/hex"
	"errors"
	"net"
)

// Stage is a step of a machine through pxeops.
type Stage uint8

// The stages, in the order a machine usually reaches them. Their names
// are the JSON's and the pxeops_boots_total stage label's.
const (
	StageOffer      Stage = iota // ProxyDHCP offer or ack on port 67
	StageBootServer              // PXE boot server ack on port 4011
	StageTFTP                    // a TFTP transfer
	StageBootIPXE                // GET /boot.ipxe
	StageIPXE                    // GET /ipxe
	StageGRUB                    // GET /grub, over HTTP or TFTP
	StageKernel                  // the kernel of the profile last served, from /assets/
	StageInitrd                  // one of its initrds
	StageAsset                   // another file from /assets/
	StageConfig                  // /config, /ignition, /cloud, /generic
	StageMetadata                // /metadata
	StageOmaha                   // an Omaha check-in
	StageInstalled               // the installer reported completion
	StageUnmatched               // no group matches the machine
	numStages
)

var stageNames = [numStages]string{"offer", "bootserver", "tftp", "boot.ipxe", "ipxe", "grub", "kernel", "initrd", "asset", "config", "metadata", "omaha", "installed", "unmatched"}

func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return "unknown"
}

// MarshalText writes the stage's name.
func (s Stage) MarshalText() ([]byte, error) {
	if s >= numStages {
		return nil, errors.New("unknown stage")
	}
	return []byte(stageNames[s]), nil
}

// UnmarshalText reads a stage's name.
func (s *Stage) UnmarshalText(b []byte) error {
	for i, n := range stageNames {
		if n == string(b) {
			*s = Stage(i)
			return nil
		}
	}
	return errors.New("unknown stage " + string(b))
}

// stageOfEndpoint is the stage of an httpserver boot endpoint's answer;
// ok is false for one that is not a machine's own request (pixiecore:
// Pixiecore's server asks, from its own address).
func stageOfEndpoint(endpoint string) (Stage, bool) {
	switch endpoint {
	case "ipxe":
		return StageIPXE, true
	case "grub":
		return StageGRUB, true
	case "config", "ignition", "cloud-config", "cloud", "raw", "generic":
		return StageConfig, true
	case "metadata":
		return StageMetadata, true
	}
	return 0, false
}

// MAC is an Ethernet address, the recorder's key.
type MAC [6]byte

// MACOf copies a 6-byte hardware address; ok is false for any other length.
func MACOf(hw net.HardwareAddr) (MAC, bool) {
	var m MAC
	if len(hw) != len(m) {
		return m, false
	}
	copy(m[:], hw)
	return m, true
}

// ParseMAC reads the form render.ParseMAC normalizes a MAC to
// (aa:bb:cc:dd:ee:ff) without allocating: what the HTTP server has after
// parsing a request, not a parser of outside input.
func ParseMAC(s string) (MAC, bool) {
	var m MAC
	if len(s) != 17 {
		return m, false
	}
	for i := range m {
		if i > 0 && s[3*i-1] != ':' {
			return m, false
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return m, false
		}
		m[i] = hi<<4 | lo
	}
	return m, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (m MAC) String() string {
	var b [17]byte
	for i, x := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		hex.Encode(b[3*i:3*i+2], []byte{x})
	}
	return string(b[:])
}

// shard spreads MACs over the shards; the low bytes vary most.
func (m MAC) shard(n int) int {
	h := uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
	h *= 0x9E3779B97F4A7C15
	return int(h>>32) % n
}
