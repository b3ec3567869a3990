package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Install once, then boot the disk (issue 17): the lab's BIOS guest with
// a blank virtual disk boots the network first; pxeops gives it an
// installer that writes a boot sector to the disk and reports to
// {{ .InstalledURL }}; pxeops is killed with SIGKILL, started again on the
// same state directory, and the next boot is handed to the disk.
const (
	diskMarker      = "PXEOPS-DISK-BOOTED"         // printed by the boot sector alone
	installedMarker = "PXEOPS-INSTALLER-REPORTED " // printed by the installer after its POST
	installerFailed = "PXEOPS-INSTALLER-FAILED"
)

// bootSector is a 512-byte MBR that prints msg on COM1 and halts. The
// BIOS loads it at linear 0x7C00 (CS:IP 0000:7C00 or 07C0:0000: only
// relative jumps, and DS is set to 0, so either works). Hand-encoded
// 16-bit real-mode code, offsets in hex:
//
//	00 FA        cli
//	01 31 C0     xor  ax, ax
//	03 8E D8     mov  ds, ax
//	05 FC        cld
//	06 BE 23 7C  mov  si, 0x7C23      ; msg
//	09 AC        next: lodsb          ; al = [ds:si++]
//	0A 84 C0     test al, al
//	0C 74 12     jz   halt            ; 0x0E + 0x12 = 0x20
//	0E 88 C4     mov  ah, al
//	10 BA FD 03  mov  dx, 0x3FD       ; COM1 line status register
//	13 EC        wait: in al, dx
//	14 A8 20     test al, 0x20        ; transmit holding register empty?
//	16 74 FB     jz   wait            ; 0x18 - 5 = 0x13
//	18 88 E0     mov  al, ah
//	1A BA F8 03  mov  dx, 0x3F8       ; COM1 transmit register
//	1D EE        out  dx, al
//	1E EB E9     jmp  next            ; 0x20 - 0x17 = 0x09
//	20 F4        halt: hlt            ; interrupts off: stays halted
//	21 EB FD     jmp  halt            ; 0x23 - 3 = 0x20
//	23 msg, NUL
//
// and 0x55 0xAA at 510, the signature without which neither SeaBIOS nor
// iPXE's sanboot runs a boot sector.
func bootSector(t *testing.T, msg string) []byte {
	t.Helper()
	code := []byte{
		0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xFC, 0xBE, 0x23, 0x7C,
		0xAC, 0x84, 0xC0, 0x74, 0x12, 0x88, 0xC4, 0xBA, 0xFD, 0x03,
		0xEC, 0xA8, 0x20, 0x74, 0xFB, 0x88, 0xE0, 0xBA, 0xF8, 0x03, 0xEE, 0xEB, 0xE9,
		0xF4, 0xEB, 0xFD,
	}
	if len(code) != 0x23 {
		t.Fatalf("boot sector code is %#x bytes, its mov si names msg at 0x23", len(code))
	}
	sector := make([]byte, 512)
	n := copy(sector, code)
	n += copy(sector[n:], msg+"\r\n")
	if n >= 446 { // the NUL and the partition table's place stay free
		t.Fatalf("boot sector message too long (%d bytes of code and message)", n)
	}
	sector[510], sector[511] = 0x55, 0xAA
	return sector
}

// installerInit is the installer's /init, laid over the quickstart
// initramfs (busybox, the NIC's driver, udhcpc.script): it loads the
// modules (e1000, then virtio-blk's), writes /mbr.bin to the disk, reports
// to the URL of pxeops.installed= on the kernel command line and powers
// off. Any failure prints installerFailed and powers off without a report.
const installerInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "` + installerFailed + ` $*"; poweroff -f; }
echo
echo "PXEOPS-INSTALLER-STARTED"
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m" || fail "insmod $m"; done
i=0
while [ ! -b /dev/vda ]; do
  i=$((i+1)); [ $i -le 50 ] || fail "no /dev/vda"; sleep 0.2
done
dd if=/mbr.bin of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null || fail "dd to /dev/vda"
sync
url=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^pxeops\.installed=//p')
[ -n "$url" ] || fail "no pxeops.installed= on the command line"
ip link set eth0 up
udhcpc -i eth0 -n -q -t 10 -T 2 -s /bin/udhcpc.script || fail "udhcpc"
wget -q -O /dev/null --post-data=done "$url" || fail "POST $url"
echo "` + installedMarker + `$url"
poweroff -f
`

// The virtio-blk driver and what it needs, in load order (Debian's
// kernel builds them as modules; virtio_pci needs the other four).
const virtioBlkModules = "drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_modern_dev.ko " +
	"drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko"

// installerAssets builds the quickstart's payload with virtio-blk's
// modules in its initramfs (a copy of build-assets.sh, edited), and the
// installer's overlay initramfs beside it: iPXE hands both to the kernel,
// which unpacks them in order, so the overlay's /init wins.
func installerAssets(t *testing.T, work string) string {
	t.Helper()
	script := filepath.Join(work, "build-assets.sh")
	b, err := os.ReadFile("../../examples/quickstart/build-assets.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, b, 0o755); err != nil {
		t.Fatal(err)
	}
	edit(t, script, func(s string) string {
		return strings.Replace(s, `amd64) modules="drivers/net/ethernet/intel/e1000/e1000.ko`, `amd64) modules="drivers/net/ethernet/intel/e1000/e1000.ko `+virtioBlkModules, 1)
	})
	assets := buildAssetsWith(t, script, work, "amd64")

	root := filepath.Join(work, "installer-root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(installerInit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "mbr.bin"), bootSector(t, diskMarker), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(assets, "installer"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `find . | cpio -o -H newc --quiet | gzip -9 > "$1"`, "sh", filepath.Join(assets, "installer", "overlay.cpio.gz"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installer overlay: %v\n%s", err, out)
	}
	return assets
}

// installFleet: the lab machine installs ({mac}) until it is installed
// ({mac, state: installed}: two keys beat one), then boots its disk.
var installFleet = map[string]string{
	"groups/lab-vm.yaml": "description: the e2e lab's BIOS guest, until its installer reports\nprofile: installer\nselector:\n  mac: " + labMAC + "\n",
	"groups/lab-vm-installed.yaml": "description: the e2e lab's BIOS guest once installed\nprofile: disk\nselector:\n  mac: " + labMAC +
		"\n  state: installed\n",
	"profiles/installer.yaml": `description: writes a boot sector to the disk, reports, powers off
kernel: /assets/quickstart/vmlinuz
initrd:
  - /assets/quickstart/initrd.cpio.gz
  - /assets/installer/overlay.cpio.gz
args:
  - console=ttyS0
  - quiet
  - "pxeops.installed={{ .InstalledURL }}"
`,
	"profiles/disk.yaml": "description: the installed system, from its disk\nboot: local\n",
}

// machineView is the part of the admin's GET /v1/machines/<mac> the test
// reads.
type machineView struct {
	State struct {
		Installed bool   `json:"installed"`
		Group     string `json:"group"`
		Profile   string `json:"profile"`
	} `json:"state"`
	Events []struct {
		Stage   string `json:"stage"`
		File    string `json:"file"`
		Profile string `json:"profile"`
	} `json:"events"`
}

// machineState asks the pxeops of the lab (admin endpoints on its boot
// port, from loopback) what it knows of mac; ok false when it answers
// anything but 200.
func (l *lab) machineState(mac string) (m machineView, raw string, ok bool) {
	out, err := exec.Command("ip", "netns", "exec", l.ns("pxe"), "curl", "-s", "--max-time", "5", "-f", "http://127.0.0.1:8080/v1/machines/"+mac).Output()
	if err != nil {
		return m, string(out), false
	}
	return m, string(out), json.Unmarshal(out, &m) == nil
}

// stages is the machine's events as "stage:profile:file" words.
func (m machineView) stages() string {
	var s []string
	for _, e := range m.Events {
		s = append(s, e.Stage+":"+e.Profile+":"+e.File)
	}
	return strings.Join(s, " ")
}

func (m machineView) has(stage string) bool {
	for _, e := range m.Events {
		if e.Stage == stage {
			return true
		}
	}
	return false
}

// TestInstallOnce: the first boot installs and reports, pxeops is killed
// (-9) and started again on the same --state-dir, and the second boot
// goes to the disk: pxeops answers /ipxe with the local profile, sends no
// kernel, and the boot sector the installer wrote prints its marker.
func TestInstallOnce(t *testing.T) {
	need(t)
	work := t.TempDir()
	bin, assets := buildPxeops(t, work), installerAssets(t, work)
	tree, state := t.TempDir(), t.TempDir()
	for name, body := range installFleet {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A blank (sparse) disk: no boot sector until the installer writes one.
	disk := filepath.Join(work, "disk.raw")
	f, err := os.Create(disk)
	if err == nil {
		err = f.Truncate(16 << 20)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	l := newLab(t)
	guest := l.bios()
	guest.args = append(guest.args, "-drive", "file="+disk+",format=raw,if=virtio")
	guest.order = "nc" // the network first, then the disk
	serve := []string{bin, "serve", "--source", tree, "--state-dir", state, "--assets-dir", assets, "--proxy-dhcp", "--interface", "eth0",
		"--http-addr", ":8080", "--log-level", "debug"}
	first := l.start("pxe", "pxeops.log", serve...)
	l.ready("pxeops.log", 20*time.Second)

	serial, took := l.bootUntil("install", 180*time.Second, nil, guest)
	if !strings.Contains(serial, installedMarker) || strings.Contains(serial, installerFailed) {
		t.Fatalf("the installer did not report after %s\nserial tail:\n%s\npxeops log tail:\n%s", took, tail(serial, 3000), tail(l.file("pxeops.log"), 3000))
	}
	t.Logf("installed and reported in %s", took)
	var m machineView
	var raw string
	deadline := time.Now().Add(10 * time.Second)
	for ok := false; !ok || !m.State.Installed; m, raw, ok = l.machineState(labMAC) {
		if time.Now().After(deadline) {
			t.Fatalf("pxeops does not show %s installed: %s\npxeops log tail:\n%s", labMAC, raw, tail(l.file("pxeops.log"), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if m.State.Group != "lab-vm" || m.State.Profile != "installer" || !m.has("kernel") || !m.has("installed") {
		t.Errorf("first boot: state %+v, events %s; want installed by lab-vm/installer after a kernel download", m.State, m.stages())
	}

	// SIGKILL between the report and the reboot: what machines.db holds
	// is all that survives.
	if err := first.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait() // the test's cleanup waits again, and is told it is done
	l.start("pxe", "pxeops-restarted.log", serve...)
	l.ready("pxeops-restarted.log", 20*time.Second)

	// SeaBIOS's debug console says which boot entry it ran: iPXE's
	// sanboot should start the disk, not SeaBIOS's fallback to it after
	// iPXE gave up.
	guest.args = append(guest.args, "-chardev", "file,id=dbg,path="+filepath.Join(l.dir, "seabios.log"), "-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	serial, took = l.bootUntil("disk", 120*time.Second, regexp.MustCompile(regexp.QuoteMeta(diskMarker)), guest)
	log := l.file("pxeops-restarted.log")
	if !strings.Contains(serial, diskMarker) {
		t.Fatalf("no %q from the disk after %s\nserial tail:\n%s\npxeops log tail:\n%s", diskMarker, took, tail(serial, 3000), tail(log, 3000))
	}
	t.Logf("the second boot reached the disk's boot sector in %s", took)
	if bios := l.file("seabios.log"); !strings.Contains(bios, "Booting from ROM") || strings.Contains(bios, "Booting from Hard Disk") {
		t.Errorf("the disk was not booted by iPXE's sanboot (SeaBIOS's own boot entries: %q)", regexp.MustCompile(`Booting from [^\n]*`).FindAllString(bios, -1))
	}
	if strings.Contains(serial, "PXEOPS-INSTALLER-STARTED") {
		t.Errorf("the installer ran again:\n%s", tail(serial, 3000))
	}
	if !regexp.MustCompile(`msg=boot endpoint=ipxe machine=\S*` + regexp.QuoteMeta(labMAC) + `\S* .*group=lab-vm-installed profile=disk`).MatchString(log) {
		t.Errorf("the restarted pxeops did not answer /ipxe with the disk profile:\n%s", tail(log, 3000))
	}
	m, raw, ok := l.machineState(labMAC)
	switch {
	case !ok:
		t.Errorf("restarted pxeops: GET /v1/machines/%s: %s", labMAC, raw)
	case !m.State.Installed || m.State.Profile != "installer":
		t.Errorf("restarted pxeops lost the state: %+v", m.State)
	case !strings.Contains(m.stages(), "ipxe:disk:"):
		t.Errorf("restarted pxeops recorded no /ipxe answer with the disk profile: %s", m.stages())
	case m.has("kernel") || m.has("initrd"):
		t.Errorf("the installer's kernel or initrd was downloaded on the second boot: %s", m.stages())
	}
	if n := counter(l.metrics(), `pxeops_http_requests_total{code="200",endpoint="assets"}`); n != 0 {
		t.Errorf("restarted pxeops sent %v files from /assets/, want none", n)
	}
	t.Logf("second boot's events: %s", m.stages())
}
