package render

import (
	"bytes"
	"errors"
)

// Local reports whether the profile boots the machine's own disk
// (boot: local) instead of a kernel over the network.
func (p *Profile) Local() bool { return p.Source.Local() }

// ErrLocalBoot means the machine's profile boots its disk: there is no
// kernel to hand over (the Pixiecore API), so the machine is left to its
// firmware's next boot entry.
var ErrLocalBoot = errors.New("profile boots the local disk")

// localScript is the iPXE script of a boot: local profile. Under BIOS
// iPXE boots the first disk's boot sector itself (sanboot of drive 0x80,
// the BIOS's first hard disk); should that fail (no boot sector), and
// under UEFI, where iPXE cannot hand over to a disk, it exits with
// success, so /boot.ipxe's own exit runs (not its failure branch, which
// waits and says the server had nothing), and the firmware moves on to
// its next boot entry: the disk, when the network comes first.
func localScript(profile string) string {
	return "#!ipxe\n" +
		"# pxeops: profile " + profile + " boots the local disk\n" +
		"echo pxeops: booting from the local disk\n" +
		"iseq ${platform} pcbios || goto exit\n" +
		"sanboot --no-describe --drive 0x80 || goto exit\n" +
		":exit\n" +
		"exit 0\n"
}

// localGRUB is the GRUB config of a boot: local profile: GRUB's exit
// returns to the firmware, which moves on to its next boot entry.
func localGRUB(revision string, g *Group) []byte {
	var b bytes.Buffer
	grubHeader(&b, revision, g)
	b.WriteString("echo " + GRUBQuote("pxeops: booting from the local disk ("+g.ID+", "+g.Profile.ID+")") + "\n")
	b.WriteString("exit\n")
	return b.Bytes()
}
