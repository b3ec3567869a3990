package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The quickstart boots: its assets are built offline by the example's own
// script, and the kernel command line `pxeops render` prints is booted by
// QEMU straight from the files (-kernel), up to the initramfs's marker.
// Booting over the network is the network-boot suite's job; this proves
// the example's payload and script arguments are sound.
func TestQuickstartBootsUnderQEMU(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86); .ci/run installs it")
	}
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	example := filepath.Join("..", "..", "examples", "quickstart")
	assets := t.TempDir()
	build := exec.Command("bash", filepath.Join(example, "build-assets.sh"), assets)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-assets.sh: %v\n%s", err, out)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"render", "--mac", "52:54:00:12:34:56", example}, &out, &errOut); code != exitOK {
		t.Fatalf("render: exit %d: %s", code, errOut.String())
	}
	var kernelLine string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "kernel ") {
			kernelLine = l
		}
	}
	fields := strings.Fields(kernelLine)
	if len(fields) < 3 || !strings.HasSuffix(fields[1], "/assets/quickstart/vmlinuz") {
		t.Fatalf("unexpected kernel line %q", kernelLine)
	}
	cmdline := strings.Join(fields[2:], " ")

	serial := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	vm := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-display", "none", "-no-reboot",
		"-serial", "file:"+serial,
		"-kernel", filepath.Join(assets, "quickstart", "vmlinuz"),
		"-initrd", filepath.Join(assets, "quickstart", "initrd.cpio.gz"),
		"-append", cmdline)
	vmOut, err := vm.CombinedOutput()
	log, _ := os.ReadFile(serial)
	want := "PXEOPS-QUICKSTART-BOOTED pxeops.group=lab-vm pxeops.mac=52:54:00:12:34:56"
	if !bytes.Contains(log, []byte(want)) {
		tail := log[max(0, len(log)-2000):]
		t.Fatalf("no boot marker %q (qemu: %v %s)\nserial log tail:\n%s", want, err, vmOut, tail)
	}
}
