package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The GRUB route: shim, then Debian's signed GRUB, both by TFTP, instead
// of iPXE. GRUB sends no DHCP of its own and asks the siaddr of the site's
// ACK for its files, so the site's server names pxeops as next-server
// (dnsmasq's pseudo-option 255, siaddr), with no boot file.
const (
	pxeopsIP      = "10.77.0.3"
	shimX64       = "/usr/lib/shim/shimx64.efi.signed" // shim-signed: Microsoft-signed, trusts Debian's CA
	grubX64       = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
	armMarker     = "PXEOPS-QUICKSTART-BOOTED pxeops.group=lab-arm64 pxeops.mac=" + labMAC
	secureBootMsg = "EFI stub: UEFI Secure Boot is enabled." // printed by the kernel's stub without "quiet"
)

var siteNextServer = "--dhcp-option=option:server-ip-address," + pxeopsIP

// grubFleet is fleet(t) with loader: grub on the lab machine's group and
// the kernel's messages on (no "quiet"), so the serial log shows whether
// the stub saw Secure Boot on.
func grubFleet(t *testing.T) string {
	t.Helper()
	tree := fleet(t)
	edit(t, filepath.Join(tree, "groups", "lab-vm.yaml"), func(s string) string { return s + "loader: grub\n" })
	edit(t, filepath.Join(tree, "profiles", "linux.yaml"), func(s string) string { return strings.Replace(s, "  - quiet\n", "", 1) })
	return tree
}

func edit(t *testing.T, name string, change func(string) string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	after := change(string(b))
	if after == string(b) {
		t.Fatalf("%s: the edit changed nothing; has the quickstart changed?", name)
	}
	if err := os.WriteFile(name, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
}

// served fails the test unless pxeops' log shows each file sent over TFTP
// (names as GRUB asks them may keep their leading slash).
func served(t *testing.T, log string, files ...string) {
	t.Helper()
	var sent []string
	for _, m := range regexp.MustCompile(`msg="tftp transfer" file=("[^"]*"|\S+)`).FindAllStringSubmatch(log, -1) {
		sent = append(sent, m[1])
	}
	t.Logf("sent over TFTP, in order: %s", strings.Join(sent, " "))
	for _, f := range files {
		if !regexp.MustCompile(`msg="tftp transfer" file="?/?` + regexp.QuoteMeta(f) + `"? `).MatchString(log) {
			t.Errorf("pxeops did not send %s over TFTP:\n%s", f, tail(log, 4000))
		}
	}
}

// TestShimGRUB boots x86-64 OVMF with Secure Boot on and Microsoft's keys
// enrolled (as a stock PC) through shim and Debian's GRUB to the
// quickstart kernel: every file comes from pxeops by TFTP, GRUB's config
// rendered for this machine.
func TestShimGRUB(t *testing.T) {
	need(t)
	work := t.TempDir()
	bin := buildPxeops(t, work)
	for _, f := range []string{shimX64, grubX64, secbootCode, msVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing; .ci/run installs shim-signed, grub-efi-amd64-signed and ovmf", f)
		}
	}
	assets, tree := buildAssets(t, work), grubFleet(t)
	l := newLab(t, siteNextServer)
	l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets, "--proxy-dhcp", "--interface", "eth0",
		"--http-addr", ":8080", "--log-level", "debug") // shim and GRUB from their defaults
	l.ready("pxeops.log", 20*time.Second)
	serial := l.boot("shim-grub", l.ovmfSecureBoot("shim-grub", msVars))
	log := l.file("pxeops.log")
	served(t, log, "shimx64.efi", "grubx64.efi", "grub/grub.cfg", "grub/"+labMAC+"-x86_64.cfg",
		"assets/quickstart/vmlinuz", "assets/quickstart/initrd.cpio.gz")
	if strings.Contains(log, `file=snponly.efi`) {
		t.Errorf("iPXE was sent to a loader: grub machine:\n%s", tail(log, 3000))
	}
	if !strings.Contains(serial, secureBootMsg) {
		t.Errorf("the kernel did not report Secure Boot on (%q), so the route's signatures went unchecked:\n%s", secureBootMsg, tail(serial, 3000))
	}
}

// armDebs extracts the arm64 shim and GRUB from Debian's arm64 packages
// (shim-signed:arm64 cannot be installed beside the amd64 one) and
// returns their paths.
func armDebs(t *testing.T, dir string) (shim, grub string) {
	t.Helper()
	if out, _ := exec.Command("dpkg", "--print-foreign-architectures").Output(); !strings.Contains(string(out), "arm64") {
		t.Skip("dpkg has no arm64 architecture; .ci/run adds it (dpkg --add-architecture arm64, apt-get update)")
	}
	cmd := exec.Command("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", "shim-signed:arm64", "grub-efi-arm64-signed:arm64")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download shim-signed:arm64 grub-efi-arm64-signed:arm64: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*_arm64.deb"))
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, filepath.Join(dir, "root")).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	shim = filepath.Join(dir, "root/usr/lib/shim/shimaa64.efi.signed")
	grub = filepath.Join(dir, "root/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed")
	for _, f := range []string{shim, grub} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not in the arm64 packages: %v", err)
		}
	}
	return shim, grub
}

// TestARM64 boots QEMU's arm64 virt machine, AAVMF with Secure Boot on and
// Microsoft's keys enrolled, through the arm64 shim and GRUB to Debian's
// arm64 kernel. pxeops has no arm64 iPXE, so the arm64 shim is the route;
// the group selects the machine by MAC and arch.
func TestARM64(t *testing.T) {
	need(t)
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 not installed; .ci/run installs qemu-system-arm")
	}
	for _, f := range []string{aavmfCode, aavmfMSVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing; .ci/run installs qemu-efi-aarch64", f)
		}
	}
	work := t.TempDir()
	bin := buildPxeops(t, work)
	debs := filepath.Join(work, "debs")
	if err := os.Mkdir(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	shim, grub := armDebs(t, debs)
	assets, tree := buildAssetsFor(t, work, "arm64"), fleet(t)
	if err := os.Remove(filepath.Join(tree, "groups", "lab-vm.yaml")); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"groups/lab-arm64.yaml": "description: the e2e lab's arm64 guest\nprofile: linux-arm64\nselector:\n  mac: " + labMAC + "\n  arch: arm64\n",
		"profiles/linux-arm64.yaml": `description: the quickstart's Linux for arm64 (QEMU virt's PL011 console)
loader: grub
kernel: /assets/arm64/quickstart/vmlinuz
initrd:
  - /assets/arm64/quickstart/initrd.cpio.gz
args:
  - console=ttyAMA0
  - "pxeops.group={{ .Group }}"
  - "pxeops.mac={{ .MAC }}"
`,
	} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := newLab(t, siteNextServer)
	l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets, "--proxy-dhcp", "--interface", "eth0",
		"--arm64-shim-binary", shim, "--arm64-grub-binary", grub, "--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)
	serial := l.bootTo("arm64", armMarker, l.aavmf("arm64", aavmfMSVars))
	served(t, l.file("pxeops.log"), "shimaa64.efi", "grubaa64.efi", "grub/grub.cfg", "grub/"+labMAC+"-arm64.cfg",
		"assets/arm64/quickstart/vmlinuz", "assets/arm64/quickstart/initrd.cpio.gz")
	if !strings.Contains(serial, secureBootMsg) {
		t.Errorf("the kernel did not report Secure Boot on (%q):\n%s", secureBootMsg, tail(serial, 3000))
	}
}
