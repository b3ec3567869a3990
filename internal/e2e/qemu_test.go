package e2e

import (
	"cmp"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Firmware images of Debian's ovmf and qemu-efi-aarch64 packages. A guest
// gets a fresh copy of its variable store, so boot entries and keys one
// test writes never reach the next.
const (
	ovmfCode     = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars     = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	secbootCode  = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	snakeoilVars = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	msVars       = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" // Microsoft's KEK and db, Secure Boot on
	aavmfCode    = "/usr/share/AAVMF/AAVMF_CODE.fd"     // the .ms and .snakeoil names are links to it
	aavmfVars    = "/usr/share/AAVMF/AAVMF_VARS.fd"
	aavmfMSVars  = "/usr/share/AAVMF/AAVMF_VARS.ms.fd" // Microsoft's KEK and db, Secure Boot on
)

// machine is one QEMU guest: the emulator and the arguments that pick its
// firmware and NIC; boot adds what every guest shares (TCG, serial log,
// the lab's tap device, network boot first).
type machine struct {
	qemu string
	args []string
	// order is QEMU's -boot order; empty: n, the network alone.
	order string
}

// bios is SeaBIOS with QEMU's default iPXE option ROM on an e1000
// (SeaBIOS skips romfile=pxe-virtio.rom silently).
func (l *lab) bios() machine {
	return machine{qemu: "qemu-system-x86_64", args: []string{"-m", "512", "-device", "e1000,netdev=n0,mac=" + labMAC}}
}

// ovmf is OVMF with EDK2's own PXE and HTTP boot on virtio-net (romfile=
// leaves out the iPXE ROM); extra goes to QEMU as it is.
func (l *lab) ovmf(name string, extra ...string) machine {
	return l.uefi("qemu-system-x86_64", name, ovmfCode, ovmfVars, append([]string{"-m", "512"}, extra...))
}

// ovmfSecureBoot is OVMF's Secure Boot build, which keeps its variables
// in SMM-protected flash, from a copy of vars (snakeoilVars or msVars).
func (l *lab) ovmfSecureBoot(name, vars string) machine {
	return l.uefi("qemu-system-x86_64", name, secbootCode, vars, []string{"-m", "512",
		"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"})
}

// aavmf is EDK2 for arm64 on QEMU's virt machine from a copy of vars
// (aavmfVars, or aavmfMSVars for Secure Boot); one code image serves both.
// cortex-a57 rather than max: TCG emulates it faster (no pointer
// authentication), and Debian's kernel needs nothing newer.
func (l *lab) aavmf(name, vars string) machine {
	return l.uefi("qemu-system-aarch64", name, aavmfCode, vars, []string{"-m", "1024", "-machine", "virt", "-cpu", "cortex-a57"})
}

func (l *lab) uefi(qemu, name, code, vars string, extra []string) machine {
	store := filepath.Join(l.dir, name+"_VARS.fd")
	l.run("cp", vars, store)
	return machine{qemu: qemu, args: append(extra,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+store,
		"-device", "virtio-net-pci,netdev=n0,romfile=,mac="+labMAC)}
}

// boot runs the guest until it powers off (240 s at most) and fails the
// test unless the serial log has the quickstart's marker.
func (l *lab) boot(name string, m machine) string { return l.bootTo(name, marker, m) }

// bootTo is boot with another marker line.
func (l *lab) bootTo(name, want string, m machine) string {
	l.t.Helper()
	serial, took := l.bootUntil(name, 240*time.Second, nil, m)
	if !strings.Contains(serial, want) {
		l.t.Fatalf("%s: no boot marker %q after %s\nserial tail:\n%s\npxeops log tail:\n%s", name, want, took,
			tail(serial, 3000), tail(l.file("pxeops.log"), 3000))
	}
	l.t.Logf("%s booted to the marker in %s", name, took)
	return serial
}

// bootUntil runs the guest until it exits, timeout passes, or its serial
// log matches stop (then 2 s more, for what the firmware does next), and
// returns the serial log and how long QEMU ran.
func (l *lab) bootUntil(name string, timeout time.Duration, stop *regexp.Regexp, m machine) (string, time.Duration) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"netns", "exec", l.ns("lab"), m.qemu, "-accel", "tcg", "-display", "none",
		"-serial", "file:" + filepath.Join(l.dir, name+".serial"), "-no-reboot", "-boot", "order=" + cmp.Or(m.order, "n"),
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"}, m.args...)
	var out strings.Builder
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				l.t.Logf("%s: qemu: %v %s", name, err, out.String())
			}
			waiting = false
		case <-time.After(500 * time.Millisecond):
			if stop != nil && stop.MatchString(l.file(name+".serial")) {
				time.Sleep(2 * time.Second)
				cancel()
				<-done
				waiting = false
			}
		}
	}
	return l.file(name + ".serial"), time.Since(start).Round(time.Second)
}
