package e2e

import (
	"context"
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
	secbootCode  = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	snakeoilVars = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
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

// secureBootArgs boots OVMF's Secure Boot build from a fresh copy of the
// snakeoil variable store, with EDK2's own PXE (no iPXE ROM).
func (l *lab) secureBootArgs(name string) []string {
	vars := filepath.Join(l.dir, name+"_VARS.fd")
	l.run("cp", snakeoilVars, vars)
	return []string{"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + secbootCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-device", "virtio-net-pci,netdev=n0,romfile=,mac=" + labMAC}
}

// bootRefused starts QEMU like boot does, waits until the serial log
// matches stop (or timeout passes), kills QEMU and returns the log.
func (l *lab) bootRefused(name string, timeout time.Duration, stop *regexp.Regexp, args ...string) string {
	l.t.Helper()
	serial := filepath.Join(l.dir, name+".serial")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base := []string{"netns", "exec", l.ns("lab"), "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-display", "none",
		"-serial", "file:" + serial, "-no-reboot", "-boot", "order=n", "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"}
	cmd := exec.CommandContext(ctx, "ip", append(base, args...)...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	start := time.Now()
	for {
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond):
			if !stop.MatchString(l.file(name + ".serial")) {
				continue
			}
			time.Sleep(2 * time.Second) // what the firmware does next, for the log
			cancel()
			<-done
		}
		break
	}
	l.t.Logf("%s: QEMU ran %s", name, time.Since(start).Round(time.Second))
	return l.file(name + ".serial")
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
	ready := func(log string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(l.metrics(), "pxeops_snapshot_info") {
			if time.Now().After(deadline) {
				t.Fatalf("pxeops not ready:\n%s", l.file(log))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	signed := l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--assets-dir", signedAssets, "--ipxe-dir", ipxe,
		"--secure-boot-cert", snakeoilCert, "--proxy-dhcp", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	ready("pxeops.log")
	l.boot("secureboot", l.secureBootArgs("secureboot")...)
	if log := l.file("pxeops.log"); !strings.Contains(log, "secure boot check on") || !strings.Contains(log, "tftp transfer\" file=snponly.efi") {
		t.Errorf("the signed boot did not go through a checking pxeops and TFTP:\n%s", tail(log, 3000))
	}
	signed.Kill()
	signed.Wait()

	l.start("pxe", "pxeops-unsigned.log", bin, "serve", "--source", tree, "--assets-dir", assets,
		"--proxy-dhcp", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	ready("pxeops-unsigned.log")
	serial := l.bootRefused("secureboot-unsigned", 90*time.Second, refusal, l.secureBootArgs("secureboot-unsigned")...)
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
