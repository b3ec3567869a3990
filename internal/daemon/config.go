// Package daemon is pxeops serve: the source, the reconciler and the
// listeners (HTTP, TFTP, ProxyDHCP) and the image updater, wired from one
// Config and run under one supervisor. A listener or source that stops
// while the daemon runs makes /readyz fail, naming it, and ends Run with
// its error, so a process supervisor restarts pxeops instead of leaving
// it up and unable to boot anything.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/serve/bootfiles"
	"github.com/pxeops/pxeops/serve/proxydhcp"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/serve/timeline"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

// Tree is where revisions come from: a source.Dir or a source.Git.
type Tree interface {
	Run(ctx context.Context, emit func(source.Revision)) error
	State() source.State
	Trigger() // check now: rescan the directory, ask the remote
}

// Config is everything serve runs with. Addresses are host:port; a
// listener handed in (tests bind port 0) is used instead of its address.
// Validate checks it and fills in what other fields imply.
type Config struct {
	// Source names the config repository (a directory or a git URL) in
	// the log and /status; Tree gives its revisions.
	Source string
	Tree   Tree
	// StateDir keeps a git source's clone and, for every source, the
	// machine state (machines.db); it must be usable when Source is a
	// git URL. Empty with a directory source: no machine state is kept.
	StateDir string
	// WebhookSecret enables POST /hooks/git, which triggers Tree.
	WebhookSecret []byte

	HTTPAddr     string
	HTTPListener net.Listener
	// ServerURL is where machines reach this server; default from the
	// interface's address (ProxyDHCP) or HTTPAddr.
	ServerURL string
	AssetsDir string

	// TLS and the admin listener: see tlsadmin.go.
	TLSAdmin

	// TFTPAddr turns TFTP on; ProxyDHCP implies ":69". An address
	// without a host binds Interface's address when Interface is set.
	TFTPAddr     string
	TFTPListener *tftpserver.Listener
	IPXEDir      string

	// ProxyDHCP answers PXE clients on Interface, ports 67 and 4011
	// (DHCPConn and BootServerConn when handed in).
	ProxyDHCP                          bool
	Interface                          string
	DHCPConn, BootServerConn           *net.UDPConn
	BIOSBinary, EFIBinary, ARM64Binary string
	// ProxyDHCP6 answers DHCPv6 PXE, HTTP-boot and iPXE clients on
	// Interface, ports 547 and 4011 (DHCP6Conn and BootServer6Conn when
	// handed in): see proxydhcp6.go.
	ProxyDHCP6                 bool
	DHCP6Conn, BootServer6Conn *net.UDPConn
	// Seen, with ProxyDHCP, is told the MAC of every PXE client's request
	// before it is answered (proxydhcp.Config.Seen); it must not block.
	Seen func(mac string)
	// The GRUB route (package bootfiles), with TFTP: shim and GRUB for
	// x86-64 and arm64 UEFI, paths of the signed binaries, read at start.
	// An empty pair: that architecture has no GRUB route.
	ShimBinary, GRUBBinary, ARM64ShimBinary, ARM64GRUBBinary string

	// Updater mirrors images when the tree asks for it; nil: off, for
	// UpdaterOff's reason. OpenUpdateRepo gives it the repository, and
	// the discovery pass (discovery.serve) too when Source is a git URL.
	Updater        *updater.Updater
	UpdaterOff     string
	OpenUpdateRepo func(context.Context) (*propose.Repo, error)

	// SecureBootCert is a PEM file of the operator's Secure Boot db:
	// with it the EFI loaders served (EFIBinary, ARM64Binary) must verify
	// at start and every kernel under /assets/ at every load (see
	// SecureBoot).
	SecureBootCert string

	// Access says who gets a machine's script and config (package
	// access); the zero value is access.Auto. AccessTokenTTL is how long
	// a routed machine's token lasts; 0: access.DefaultTokenTTL.
	Access         access.Mode
	AccessTokenTTL time.Duration

	// ShutdownTimeout bounds in-flight requests at the end; default 30 s.
	ShutdownTimeout time.Duration
	// FailGrace is how long /readyz reports a stopped component before
	// the daemon shuts down, so probes and load balancers see why;
	// default 2 s.
	FailGrace time.Duration

	// Timeline records every machine's boot (/v1/machines); nil: one
	// with timeline's defaults, its metrics in Registry.
	Timeline *timeline.Recorder

	Version  string
	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: a new one with Go and process metrics

	// discoveryFirst and discoveryEvery, when set, replace the wait
	// before discovery's first look and discovery.interval (tests).
	discoveryFirst, discoveryEvery time.Duration

	serverIP   net.IP // Interface's address
	proxy6     proxy6 // with ProxyDHCP6
	secureBoot *SecureBoot
	loaders    *bootfiles.Loaders // nil: no GRUB route
	validated  bool
}

// FieldError is a Config field whose value cannot be used; cmd/pxeops
// names the flag the field came from.
type FieldError struct {
	Field string // e.g. "HTTPAddr"
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Err.Error()
	}
	return e.Field + " " + e.Value + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, value, format string, a ...any) error {
	return &FieldError{Field: field, Value: value, Err: fmt.Errorf(format, a...)}
}

// Validate checks the configuration without opening sockets and fills in
// what the fields imply: ProxyDHCP's TFTP on :69 at Interface's address,
// the server URL, defaults. It may create StateDir.
func (c *Config) Validate() error {
	if c.Tree == nil {
		return errors.New("daemon: no Tree")
	}
	if c.HTTPListener == nil {
		if err := checkHostPort(c.HTTPAddr, ":8080"); err != nil {
			return &FieldError{Field: "HTTPAddr", Value: c.HTTPAddr, Err: err}
		}
	}
	if c.Interface != "" {
		ip, err := proxydhcp.InterfaceIP(c.Interface)
		if err != nil && (c.ProxyDHCP || !c.ProxyDHCP6) { // an IPv6-only interface serves ProxyDHCP6
			return &FieldError{Field: "Interface", Value: c.Interface, Err: err}
		}
		c.serverIP = ip
	}
	if c.ProxyDHCP {
		if c.Interface == "" {
			return fieldErr("Interface", "", "required for ProxyDHCP: the network interface machines boot on")
		}
		if c.TFTPAddr == "" && c.TFTPListener == nil {
			c.TFTPAddr = ":69"
		}
		if c.ServerURL == "" {
			c.ServerURL = "http://" + net.JoinHostPort(c.serverIP.String(), c.httpPort())
		}
	}
	if err := c.validateProxyDHCP6(); err != nil {
		return err
	}
	if c.TFTPAddr != "" && c.TFTPListener == nil {
		if err := checkHostPort(c.TFTPAddr, ":69"); err != nil {
			return &FieldError{Field: "TFTPAddr", Value: c.TFTPAddr, Err: err}
		}
		// Only the interface machines boot on, not every network.
		if host, port, _ := net.SplitHostPort(c.TFTPAddr); host == "" {
			c.TFTPAddr = c.tftpHost(port)
		}
	}
	if c.TFTPAddr != "" || c.TFTPListener != nil {
		var binaries []string
		if c.ProxyDHCP6 {
			binaries = []string{c.EFIBinary} // no BIOS over IPv6
		}
		if c.ProxyDHCP {
			binaries = []string{c.BIOSBinary, c.EFIBinary}
		}
		if (c.ProxyDHCP || c.ProxyDHCP6) && c.ARM64Binary != "" {
			binaries = append(binaries, c.ARM64Binary)
		}
		// These errors name --ipxe-dir already.
		if err := tftpserver.CheckDir(c.IPXEDir, binaries...); err != nil {
			return err
		}
	}
	if c.TFTPAddr != "" || c.TFTPListener != nil {
		if err := c.loadLoaders(); err != nil {
			return err
		}
	}
	if c.SecureBootCert != "" {
		sb, err := LoadSecureBoot(c.SecureBootCert)
		if err != nil {
			return err
		}
		// What TFTP and /ipxe-bin/ hand UEFI firmware: refused before
		// anything runs, as no machine with Secure Boot on could use it.
		if c.TFTPAddr != "" || c.TFTPListener != nil {
			if err := sb.CheckLoaders(c.IPXEDir, Loader{"--efi-binary", c.EFIBinary}, Loader{"--arm64-binary", c.ARM64Binary}); err != nil {
				return err
			}
		}
		c.secureBoot = sb
	}
	if c.ServerURL == "" {
		c.ServerURL = defaultServerURL(c.httpHost(), c.httpPort())
	}
	if c.AssetsDir != "" {
		root, err := safefile.OpenRoot(c.AssetsDir)
		if err != nil {
			return &FieldError{Field: "AssetsDir", Value: c.AssetsDir, Err: err}
		}
		root.Close()
	}
	if source.IsGitURL(c.Source) || c.StateDir != "" { // the machine state is kept there for every source
		if err := checkStateDir(c.StateDir); err != nil {
			return &FieldError{Field: "StateDir", Value: c.StateDir, Err: err}
		}
	}
	if err := c.validateTLSAdmin(); err != nil {
		return err
	}
	if c.AccessTokenTTL < 0 {
		return fieldErr("AccessTokenTTL", c.AccessTokenTTL.String(), "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.FailGrace <= 0 {
		c.FailGrace = 2 * time.Second
	}
	c.validated = true
	return nil
}

// loadLoaders reads the GRUB route's binaries, naming the field of the
// one that cannot be used.
func (c *Config) loadLoaders() error {
	pairs := []struct {
		ld     bootfiles.Loader
		fields [2]string // shim's, GRUB's
	}{
		{bootfiles.Loader{Arch: bootfiles.X86_64, Shim: c.ShimBinary, GRUB: c.GRUBBinary}, [2]string{"ShimBinary", "GRUBBinary"}},
		{bootfiles.Loader{Arch: bootfiles.ARM64, Shim: c.ARM64ShimBinary, GRUB: c.ARM64GRUBBinary}, [2]string{"ARM64ShimBinary", "ARM64GRUBBinary"}},
	}
	var lds []bootfiles.Loader
	for _, p := range pairs {
		if p.ld.Shim != "" || p.ld.GRUB != "" {
			lds = append(lds, p.ld)
		}
	}
	if len(lds) == 0 {
		return nil
	}
	l, err := bootfiles.LoadLoaders(lds...)
	var le *bootfiles.LoaderError
	if errors.As(err, &le) {
		for _, p := range pairs {
			if p.ld.Arch == le.Arch {
				i := 0
				if le.GRUB {
					i = 1
				}
				return &FieldError{Field: p.fields[i], Value: [2]string{p.ld.Shim, p.ld.GRUB}[i], Err: le.Err}
			}
		}
	}
	c.loaders = l
	return err
}

// checkHostPort accepts host:port with a numeric port, the host optional.
func checkHostPort(addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. %s", example)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q: want a number up to 65535, e.g. %s", port, example)
	}
	return nil
}

// checkStateDir makes sure the clone and the machine state can be kept
// in dir: a relative path would follow the working directory (HOME unset
// leaves the default one),
// and a directory that cannot be created or written fails every fetch,
// which the git source would retry for ever as if the network were down.
func checkStateDir(dir string) error {
	if dir == "" {
		return errors.New("required for a git source: an absolute directory to keep the clone in")
	}
	if !filepath.IsAbs(dir) {
		return errors.New("want an absolute path: the clone and the machine state must not depend on the working directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot be created: %w", err)
	}
	f, err := os.CreateTemp(dir, ".pxeops-write-test-")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func (c *Config) httpAddr() string {
	if c.HTTPListener != nil {
		return c.HTTPListener.Addr().String()
	}
	return c.HTTPAddr
}

func (c *Config) httpHost() string { host, _, _ := net.SplitHostPort(c.httpAddr()); return host }
func (c *Config) httpPort() string { _, port, _ := net.SplitHostPort(c.httpAddr()); return port }

// defaultServerURL guesses the URL machines on the network can reach:
// the listen host when it names one, else this host's first non-loopback
// IPv4 address.
func defaultServerURL(host, port string) string {
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() && ip.IP.IsGlobalUnicast() {
					host = ip.IP.String()
					break
				}
			}
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
