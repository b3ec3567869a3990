package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBootStatic is Pixiecore's static mode: `pxeops boot` with the
// quickstart's kernel and initrd and no repository at all boots real
// firmware (SeaBIOS and its iPXE ROM) through ProxyDHCP, TFTP and HTTP.
func TestBootStatic(t *testing.T) {
	need(t)
	work := t.TempDir()
	bin, assets := buildPxeops(t, work), buildAssets(t, work)
	l := newLab(t)
	// The marker's arguments come from --cmdline alone: no group, no
	// template ({{ is literal in boot).
	l.start("pxe", "pxeops.log", bin, "boot", filepath.Join(assets, "quickstart", "vmlinuz"), filepath.Join(assets, "quickstart", "initrd.cpio.gz"),
		"--cmdline", "console=ttyS0 quiet pxeops.group=static pxeops.mac={{.MAC}}", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)
	serial := l.bootTo("boot-static", "PXEOPS-QUICKSTART-BOOTED pxeops.group=static pxeops.mac={{.MAC}}", l.bios())
	if log := l.file("pxeops.log"); !strings.Contains(log, "mac="+labMAC+" file=") {
		t.Errorf("the machine was not answered by ProxyDHCP:\n%s\nserial:\n%s", tail(log, 3000), tail(serial, 1000))
	}
}
