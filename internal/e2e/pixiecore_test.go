package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	pxeops := l.start("pxe", "pxeops.log", bin, "boot", filepath.Join(assets, "quickstart", "vmlinuz"), filepath.Join(assets, "quickstart", "initrd.cpio.gz"),
		"--cmdline", "console=ttyS0 quiet pxeops.group=static pxeops.mac={{.MAC}}", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)
	serial := l.bootTo("boot-static", "PXEOPS-QUICKSTART-BOOTED pxeops.group=static pxeops.mac={{.MAC}}", l.bios())
	if log := l.file("pxeops.log"); !strings.Contains(log, "mac="+labMAC+" file=") {
		t.Errorf("the machine was not answered by ProxyDHCP:\n%s\nserial:\n%s", tail(log, 3000), tail(serial, 1000))
	}
	// SIGTERM removes the directory the files were linked into.
	m := regexp.MustCompile(`assets=(\S+pxeops-boot-\d+)`).FindStringSubmatch(l.file("pxeops.log"))
	if m == nil {
		t.Fatalf("no assets directory in the log:\n%s", tail(l.file("pxeops.log"), 2000))
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("assets directory while serving: %v", err)
	}
	if err := pxeops.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(m[1]); err == nil; _, err = os.Stat(m[1]) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still there 10 s after SIGTERM:\n%s", m[1], tail(l.file("pxeops.log"), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
