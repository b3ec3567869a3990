package daemon

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/serve/bootfiles"
	"github.com/pxeops/pxeops/serve/tftpserver"
)

// tftpGet reads name from the TFTP server at to, sending from the
// address from (the machine it plays), in 512-byte blocks; it returns
// the file, or the server's error message.
func tftpGet(t *testing.T, from string, to net.Addr, name string) ([]byte, string) {
	t.Helper()
	c, err := net.ListenPacket("udp4", from+":0")
	must(t, err)
	defer c.Close()
	c.WriteTo(append(append([]byte{0, 1}, name...), "\x00octet\x00"...), to)
	var file []byte
	buf := make([]byte, 516)
	for block := uint16(1); ; block++ {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: %v after %d bytes", name, err, len(file))
		}
		switch op := binary.BigEndian.Uint16(buf); {
		case op == 5:
			return nil, string(bytes.TrimRight(buf[4:n], "\x00"))
		case op != 3 || binary.BigEndian.Uint16(buf[2:]) != block:
			t.Fatalf("%s: unexpected packet % x", name, buf[:n])
		}
		file = append(file, buf[4:n]...)
		c.WriteTo([]byte{0, 4, byte(block >> 8), byte(block)}, peer)
		if n < 516 {
			return file, ""
		}
	}
}

// The GRUB route end to end over real sockets, as shim and GRUB walk it
// (internal/e2e boots the firmware): the boot server hands the machine
// shim; TFTP serves shim, GRUB, the prefix config and the machine's own
// config, with its access rule, and the kernel; HTTP serves GRUB at the
// double-slash path shim asks for over HTTP boot.
func TestGRUBRoute(t *testing.T) {
	dir := t.TempDir()
	shim, grub := filepath.Join(dir, "shimx64.efi.signed"), filepath.Join(dir, "grubx64.efi.signed")
	writeFile(t, shim, "MZ shim")
	writeFile(t, grub, "MZ grub")
	assets := t.TempDir()
	writeFile(t, filepath.Join(assets, "k"), strings.Repeat("kernel", 200)) // several blocks
	tree := fleetOf(t, map[string]string{
		"profiles/p.yaml": "loader: grub\nkernel: /assets/k\nargs: [console=ttyS0, \"pxeops.config={{ .ServerURL }}/config?mac={{ .MAC }}\"]\nconfig: {template: c.sh}\n",
		"templates/c.sh":  "echo the config of {{ .MAC }}: {{ secret \"token\" }}\n",
		"groups/g.yaml":   "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	})
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	boot := udpConn(t)
	r := start(t, Config{Source: "fleet", Tree: withToken(t, tree), ProxyDHCP: true, Interface: "lo",
		DHCPConn: udpConn(t), BootServerConn: boot, TFTPListener: tl, AssetsDir: assets,
		IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi", ShimBinary: shim, GRUBBinary: grub})
	const mac = "52:54:00:00:00:01"
	to := tl.LocalAddr()

	if reply := bootServerReply(t, boot.LocalAddr(), "127.0.0.2", "127.0.0.2", mac); reply == nil || reply.BootFileName != "shimx64.efi" {
		t.Fatalf("boot server's answer: %v", reply)
	}
	for name, want := range map[string]string{"shimx64.efi": "MZ shim", "grubx64.efi": "MZ grub", "/grub/grub.cfg": bootfiles.Handover, "/assets/k": strings.Repeat("kernel", 200)} {
		if got, msg := tftpGet(t, "127.0.0.2", to, name); string(got) != want {
			t.Errorf("TFTP %s: %q %s", name, got, msg)
		}
	}
	if got, msg := tftpGet(t, "127.0.0.2", to, "revocations_sku.efi"); got != nil || !strings.Contains(msg, "not found") {
		t.Errorf("revocations_sku.efi: %q %q", got, msg)
	}
	cfgName := "/grub/" + mac + "-x86_64.cfg"
	got, msg := tftpGet(t, "127.0.0.2", to, cfgName)
	m := regexp.MustCompile(`'pxeops\.config=([^']+)'`).FindSubmatch(got)
	if m == nil || !bytes.Contains(got, []byte("linux '/assets/k' 'console=ttyS0'")) && !bytes.Contains(got, []byte("linux /assets/k 'console=ttyS0'")) || !bytes.Contains(m[1], []byte("pxeops.token=")) {
		t.Fatalf("the machine's GRUB config: %q %s", got, msg)
	}
	if code, body := fetch(t, from("127.0.0.2"), string(m[1])); code != 200 || !strings.Contains(body, "s3cr3t-join-value") {
		t.Errorf("the config, by the URL in the GRUB config: %d %q", code, body)
	}
	// Another address asking for the machine's config is refused: its
	// profile reads a secret.
	if got, msg := tftpGet(t, "127.0.0.3", to, cfgName); got != nil || !strings.Contains(msg, "403") {
		t.Errorf("the machine's GRUB config to 127.0.0.3: %q %q", got, msg)
	}
	if code, body := r.get("/loader//grubx64.efi"); code != 200 || body != "MZ grub" {
		t.Errorf("/loader//grubx64.efi: %d %q", code, body)
	}
	if !strings.Contains(r.logs.String(), "GRUB route on") {
		t.Errorf("no startup line for the GRUB route:\n%s", r.logs)
	}
}

func TestLoadersNameTheirField(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim")
	os.WriteFile(shim, []byte("MZ"), 0o644)
	for _, c := range []struct {
		cfg          Config
		field, value string
	}{
		{Config{ShimBinary: shim, GRUBBinary: filepath.Join(dir, "missing")}, "GRUBBinary", filepath.Join(dir, "missing")},
		{Config{ShimBinary: filepath.Join(dir, "nope"), GRUBBinary: shim}, "ShimBinary", filepath.Join(dir, "nope")},
		{Config{ARM64GRUBBinary: shim}, "ARM64ShimBinary", ""},
	} {
		err := c.cfg.loadLoaders()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field || fe.Value != c.value {
			t.Errorf("%+v: %v, want a FieldError on %s %q", c.cfg, err, c.field, c.value)
		}
	}
}
