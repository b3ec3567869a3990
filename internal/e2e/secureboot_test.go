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

// The snakeoil test key of Debian's ovmf package: OVMF_VARS_4M.snakeoil.fd
// enrols its certificate as PK, KEK and db, so images signed with it boot
// under OVMF_CODE_4M.secboot.fd with Secure Boot enforcing.
const (
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key" // PEM, encrypted with the password "snakeoil"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// refusal is what OVMF prints on the serial console when its image
// verification refuses the loader it downloaded (seen in this lab).
var refusal = regexp.MustCompile(`BdsDxe: failed to load Boot\d+ "UEFI PXEv4 \(MAC:525400123456\)"[^\n]*: Access Denied`)

func needSecureBoot(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"sbsign", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed; .ci/run installs sbsigntool and openssl", tool)
		}
	}
	for _, f := range []string{snakeoilKey, snakeoilCert, secbootCode, snakeoilVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing; .ci/run installs ovmf (the Secure Boot build and its snakeoil key)", f)
		}
	}
}

// sign writes in signed with the snakeoil key to out; sbsign takes no
// passphrase, so the key is decrypted into the test's directory first.
func sign(t *testing.T, in, out string) {
	t.Helper()
	key := filepath.Join(t.TempDir(), "db.key")
	for _, args := range [][]string{
		{"openssl", "rsa", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", key},
		{"sbsign", "--key", key, "--cert", snakeoilCert, "--output", out, in},
	} {
		if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if b, err := exec.Command("cp", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v %s", from, to, err, b)
	}
}

// TestSecureBoot boots OVMF with Secure Boot enforcing, its db the
// snakeoil certificate: iPXE and the quickstart kernel signed with that
// key, served by pxeops with --secure-boot-cert, boot to the marker; the
// unsigned snponly.efi, from a pxeops without the flag, is downloaded
// over TFTP and then refused by the firmware.
func TestSecureBoot(t *testing.T) {
	need(t)
	needSecureBoot(t)
	work := t.TempDir()
	bin, assets, tree := buildPxeops(t, work), buildAssets(t, work), fleet(t)

	ipxe, signedAssets := filepath.Join(work, "ipxe-signed"), filepath.Join(work, "assets-signed")
	for _, d := range []string{ipxe, filepath.Join(signedAssets, "quickstart")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/usr/lib/ipxe/undionly.kpxe", ipxe) // --proxy-dhcp wants the BIOS binary too
	sign(t, "/usr/lib/ipxe/snponly.efi", filepath.Join(ipxe, "snponly.efi"))
	entries, err := os.ReadDir(filepath.Join(assets, "quickstart"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		from, to := filepath.Join(assets, "quickstart", e.Name()), filepath.Join(signedAssets, "quickstart", e.Name())
		if e.Name() == "vmlinuz" {
			sign(t, from, to)
		} else {
			copyFile(t, from, to)
		}
	}

	l := newLab(t)
	signed := l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", signedAssets, "--ipxe-dir", ipxe,
		"--secure-boot-cert", snakeoilCert, "--proxy-dhcp", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)
	l.boot("secureboot", l.ovmfSecureBoot("secureboot", snakeoilVars))
	if log := l.file("pxeops.log"); !strings.Contains(log, "secure boot check on") || !strings.Contains(log, "tftp transfer\" file=snponly.efi") {
		t.Errorf("the signed boot did not go through a checking pxeops and TFTP:\n%s", tail(log, 3000))
	}
	signed.Kill()
	signed.Wait()

	l.start("pxe", "pxeops-unsigned.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets,
		"--proxy-dhcp", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops-unsigned.log", 20*time.Second)
	serial, took := l.bootUntil("secureboot-unsigned", 90*time.Second, refusal, l.ovmfSecureBoot("secureboot-unsigned", snakeoilVars))
	t.Logf("secureboot-unsigned: QEMU ran %s", took)
	pxeLog := l.file("pxeops-unsigned.log")
	if strings.Contains(serial, marker) {
		t.Fatalf("the unsigned snponly.efi booted under Secure Boot:\n%s", tail(serial, 3000))
	}
	if !strings.Contains(pxeLog, "tftp transfer\" file=snponly.efi") {
		t.Errorf("snponly.efi was never transferred, so its refusal proves nothing:\n%s", tail(pxeLog, 3000))
	}
	m := refusal.FindString(serial)
	if m == "" {
		t.Fatalf("no refusal by the firmware in the serial log:\n%s\npxeops log tail:\n%s", tail(serial, 3000), tail(pxeLog, 2000))
	}
	t.Logf("OVMF refused the unsigned loader: %q", m)
	for _, line := range strings.Split(serial, "\n") {
		if strings.HasPrefix(line, "BdsDxe") {
			t.Logf("serial: %s", strings.TrimSpace(line))
		}
	}
}
