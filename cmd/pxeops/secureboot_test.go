package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The key OVMF's snakeoil variable store trusts (package ovmf), and a
// real EFI application to sign with it (package ipxe).
const (
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	snponlyEFI   = "/usr/lib/ipxe/snponly.efi"
)

// snakeoilSigned returns a directory holding snponly.efi unsigned as
// "unsigned.efi" and signed with the snakeoil key as "signed.efi".
func snakeoilSigned(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"sbsign", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed; .ci/run installs sbsigntool and openssl", tool)
		}
	}
	for _, f := range []string{snakeoilKey, snakeoilCert, snponlyEFI} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing; .ci/run installs ovmf and ipxe", f)
		}
	}
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "db.key")
	for _, args := range [][]string{
		{"openssl", "rsa", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", key},
		{"sbsign", "--key", key, "--cert", snakeoilCert, "--output", filepath.Join(dir, "signed.efi"), snponlyEFI},
		{"cp", snponlyEFI, filepath.Join(dir, "unsigned.efi")},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

func freeUDP(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer conn.Close()
	return conn.LocalAddr().String()
}

// TestServeSecureBoot: with --secure-boot-cert, serve refuses to start
// with an unsigned --efi-binary and starts with a signed one; a tree whose
// kernel is unsigned is refused like an invalid tree, at the kernel's
// line, while the last good one keeps serving; a remote kernel is a
// warning. The binaries are real: Debian's snponly.efi, signed by sbsign.
func TestServeSecureBoot(t *testing.T) {
	bins := snakeoilSigned(t)
	unsignedIPXE, signedIPXE, assets := t.TempDir(), t.TempDir(), t.TempDir()
	for dst, src := range map[string]string{
		filepath.Join(unsignedIPXE, "snponly.efi"): "unsigned.efi",
		filepath.Join(signedIPXE, "snponly.efi"):   "signed.efi",
		filepath.Join(assets, "signed"):            "signed.efi", // a PE image like a kernel's EFI stub
		filepath.Join(assets, "unsigned"):          "unsigned.efi",
	} {
		b, err := os.ReadFile(filepath.Join(bins, src))
		must(t, err)
		must(t, os.WriteFile(dst, b, 0o644))
	}
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", "kernel: /assets/signed\ninitrd: [/assets/i]\nargs: [v=1]\n")
	write(t, dir, "groups/one.yaml", group(mac1))

	code, _, stderr := runCLI(t, "serve", "--source", dir, "--http-addr", "127.0.0.1:0", "--tftp-addr", freeUDP(t),
		"--ipxe-dir", unsignedIPXE, "--assets-dir", assets, "--secure-boot-cert", snakeoilCert)
	for _, want := range []string{"--secure-boot-cert " + snakeoilCert, filepath.Join(unsignedIPXE, "snponly.efi"), "--efi-binary", "has no Authenticode signature"} {
		if code != exitUsage || !strings.Contains(stderr, want) {
			t.Errorf("unsigned --efi-binary: exit %d, want %d and %q in %q", code, exitUsage, want, stderr)
		}
	}
	code, _, stderr = runCLI(t, "serve", "--source", dir, "--http-addr", "127.0.0.1:0", "--secure-boot-cert", snponlyEFI)
	if code != exitUsage || !strings.Contains(stderr, "--secure-boot-cert "+snponlyEFI+": no PEM certificate") {
		t.Errorf("a --secure-boot-cert that is no certificate: exit %d %q", code, stderr)
	}

	s := startServe(t, dir, "--tftp-addr", freeUDP(t), "--ipxe-dir", signedIPXE, "--assets-dir", assets, "--secure-boot-cert", snakeoilCert)
	s.servesScript(t, mac1, "/assets/signed")
	s.eventually(t, "a log line says the check is on", func() bool { return strings.Contains(s.logs.String(), "secure boot check on") })

	write(t, dir, "profiles/p.yaml", "description: x\nkernel: /assets/unsigned\ninitrd: [/assets/i]\nargs: [v=2]\n")
	s.eventually(t, "the unsigned kernel's tree is refused", func() bool {
		a := s.status(t).LastAttempt
		return a != nil && a.Result == "invalid"
	})
	d := s.status(t).LastAttempt.Diagnostics
	if len(d) != 1 || d[0].File != "profiles/p.yaml" || d[0].Line != 2 || d[0].Column != 9 || d[0].Severity != "error" ||
		!strings.Contains(d[0].Message, "kernel /assets/unsigned would be refused under Secure Boot") || !strings.Contains(d[0].Message, "has no Authenticode signature") {
		t.Errorf("diagnostics %+v", d)
	}
	if code, body, _ := s.get("/ipxe?mac=" + mac1); code != 200 || !strings.Contains(body, "/assets/signed") || strings.Contains(body, "v=2") {
		t.Errorf("the last good tree is not what serves: %d %q", code, body)
	}

	write(t, dir, "profiles/p.yaml", "kernel: https://boot.example/vmlinuz\ninitrd: [/assets/i]\nargs: [v=3]\n")
	s.servesScript(t, mac1, "v=3")
	if d := s.status(t).LastAttempt.Diagnostics; len(d) != 1 || d[0].Severity != "warning" || !strings.Contains(d[0].Message, "https://boot.example/vmlinuz is on another server") {
		t.Errorf("remote kernel: diagnostics %+v", d)
	}
}

// check --secure-boot-cert says what serve would refuse, at the same
// place.
func TestCheckSecureBoot(t *testing.T) {
	bins := snakeoilSigned(t)
	assets := t.TempDir()
	must(t, os.Rename(filepath.Join(bins, "signed.efi"), filepath.Join(assets, "signed")))
	must(t, os.Rename(filepath.Join(bins, "unsigned.efi"), filepath.Join(assets, "unsigned")))
	ipxe := t.TempDir()
	must(t, os.Symlink(filepath.Join(assets, "signed"), filepath.Join(ipxe, "link.efi"))) // outside the directory: refused, as TFTP would
	for _, tc := range []struct {
		kernel string
		flags  []string
		code   int
		want   string
	}{
		{"/assets/signed", nil, exitOK, "valid"},
		{"/assets/unsigned", nil, exitInvalid, "profiles/p.yaml:1:9: error: kernel /assets/unsigned would be refused under Secure Boot"},
		{"https://boot.example/k", nil, exitOK, "warning: kernel https://boot.example/k is on another server"},
		{"/assets/signed", []string{"--ipxe-dir", bins}, exitInvalid, "--efi-binary in --ipxe-dir"},
		{"/assets/signed", []string{"--ipxe-dir", assets, "--efi-binary", "signed"}, exitOK, "valid"},
		{"/assets/signed", []string{"--ipxe-dir", ipxe, "--efi-binary", "link.efi"}, exitInvalid, "link.efi"},
	} {
		tree := writeTree(t, map[string]string{"profiles/p.yaml": "kernel: " + tc.kernel + "\ninitrd: [/assets/i]\n", "groups/g.yaml": group(mac1)})
		args := append([]string{"check", "--secure-boot-cert", snakeoilCert, "--assets-dir", assets}, tc.flags...)
		code, out, stderr := runCLI(t, append(args, tree)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s %v: exit %d, want %d and %q:\n%s%s", tc.kernel, tc.flags, code, tc.code, tc.want, out, stderr)
		}
	}
	// A rollout's kernel boots its share of the machines: checked too.
	image := "os: linux\nversion: \"1\"\nkernel: {url: /assets/signed}\ninitrd: [{url: /assets/i}]\nrollout:\n  version: \"2\"\n  share: 10%\n  kernel: {url: /assets/unsigned}\n  initrd: [{url: /assets/i}]\n"
	tree := writeTree(t, map[string]string{"images/i.yaml": image, "profiles/p.yaml": "image: i\n", "groups/g.yaml": group(mac1)})
	if code, out, _ := runCLI(t, "check", "--secure-boot-cert", snakeoilCert, "--assets-dir", assets, tree); code != exitInvalid ||
		!strings.Contains(out, "images/i.yaml:8:17: error: kernel /assets/unsigned would be refused under Secure Boot") {
		t.Errorf("unsigned rollout kernel: exit %d %q", code, out)
	}
	tree = writeTree(t, map[string]string{"profiles/p.yaml": "kernel: /assets/signed\ninitrd: [/assets/i]\n", "groups/g.yaml": group(mac1)})
	if code, out, _ := runCLI(t, "check", "--secure-boot-cert", snakeoilCert, tree); code != exitOK || !strings.Contains(out, "not checked against --secure-boot-cert: no --assets-dir") {
		t.Errorf("without --assets-dir: exit %d %q", code, out)
	}
}
