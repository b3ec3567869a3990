package main

import (
	"flag"
	"time"

	"github.com/pxeops/pxeops/internal/daemon"
)

// netFlags are the listener, boot-loader and logging flags serve and boot
// share: defined once, so their names, defaults and help never drift.
type netFlags struct {
	httpAddr, serverURL, tftpAddr, iface string
	bios, efi, arm64, ipxeDir            string
	shutdown                             time.Duration
	level, format                        *choice
}

func (n *netFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&n.httpAddr, "http-addr", ":8080", "HTTP listen address")
	fset.StringVar(&n.serverURL, "server-url", "", "URL machines reach this server at (default: http://<first non-loopback address><http-addr port>)")
	fset.StringVar(&n.tftpAddr, "tftp-addr", "", "TFTP listen address for the iPXE binaries, e.g. :69; off when empty (:69 with --proxy-dhcp)")
	fset.StringVar(&n.iface, "interface", "", "the network interface machines boot on: ProxyDHCP answers there, and TFTP binds its address when --tftp-addr has no host")
	fset.StringVar(&n.bios, "bios-binary", "undionly.kpxe", "with --proxy-dhcp: iPXE for BIOS clients, in --ipxe-dir")
	fset.StringVar(&n.efi, "efi-binary", "snponly.efi", "with --proxy-dhcp: iPXE for x86-64 UEFI clients, in --ipxe-dir (ipxe.efi works too if it is a file there)")
	fset.StringVar(&n.arm64, "arm64-binary", "", "with --proxy-dhcp: iPXE for arm64 UEFI clients, in --ipxe-dir; empty: arm64 clients get the GRUB route when --arm64-shim-binary is set (serve), else no answer")
	fset.StringVar(&n.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries served over TFTP (Debian package ipxe)")
	fset.DurationVar(&n.shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long in-flight requests (downloads) may finish")
	n.level = &choice{value: "info", allowed: []string{"debug", "info", "warn", "error"}}
	fset.Var(n.level, "log-level", "debug, info, warn or error")
	n.format = &choice{value: "text", allowed: []string{"text", "json"}}
	fset.Var(n.format, "log-format", "text or json")
}

// apply sets the fields of cfg these flags give.
func (n *netFlags) apply(cfg *daemon.Config) {
	cfg.HTTPAddr, cfg.ServerURL, cfg.TFTPAddr, cfg.Interface = n.httpAddr, n.serverURL, n.tftpAddr, n.iface
	cfg.BIOSBinary, cfg.EFIBinary, cfg.ARM64Binary, cfg.IPXEDir = n.bios, n.efi, n.arm64, n.ipxeDir
	cfg.ShutdownTimeout = n.shutdown
}
