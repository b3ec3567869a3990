package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pxeops/pxeops/internal/daemon"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("serve", "serve --source DIR [flags]\n\nServes the config repository at DIR to booting machines, reloading it on every change.", stderr)
	src := fset.String("source", "", "config repository: a directory, or a git URL (required)")
	poll := fset.Duration("poll", 30*time.Second, "how often to check the source: full rescan of a directory, ls-remote of a git remote (jittered)")
	watch := fset.Bool("watch", true, "watch a directory source with fsnotify; the periodic rescan runs either way")
	var g gitFlags
	g.register(fset)
	var nf netFlags
	nf.register(fset)
	assetsDir := fset.String("assets-dir", "", "directory served at /assets/ (kernels, initrds)")
	var ta daemon.TLSAdmin
	fset.StringVar(&ta.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS; with --tls-key serves HTTPS at --https-addr beside HTTP, reloaded when the files change")
	fset.StringVar(&ta.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fset.StringVar(&ta.HTTPSAddr, "https-addr", "", "HTTPS listen address (default :8443 with --tls-cert); HTTP stays at --http-addr for firmware and iPXE without TLS")
	fset.StringVar(&ta.HTTPSURL, "https-url", "", "URL machines reach HTTPS at, which configs are fetched from ({{ .ConfigServerURL }}; default https://<--server-url's host>:<--https-addr's port>)")
	fset.StringVar(&ta.AdminAddr, "admin-addr", "", "serve /status, /metrics and /hooks/git here (e.g. 127.0.0.1:9090), not on the boot ports; empty: on the boot ports")
	proxyDHCP := fset.Bool("proxy-dhcp", false, "answer PXE clients as a ProxyDHCP server (ports 67 and 4011) on --interface; needs root or CAP_NET_BIND_SERVICE (before Linux 5.7 also CAP_NET_RAW)")
	proxyDHCP6 := fset.Bool("proxy-dhcp6", false, "answer IPv6 PXE, HTTP-boot and iPXE clients as a ProxyDHCPv6 server (ports 547 and 4011, no addresses) on --interface, which needs a global or ULA IPv6 address; TFTP then also listens on IPv6 (on every interface beside --proxy-dhcp: one dual-stack socket). Needs root or CAP_NET_BIND_SERVICE")
	shimFile := fset.String("shim-binary", debianShim, "with --proxy-dhcp: shim for x86-64 UEFI machines whose loader is grub (Secure Boot with Microsoft's keys); served over TFTP as shimx64.efi (Debian package shim-signed). The default is used only when it and --grub-binary's default exist")
	grubFile := fset.String("grub-binary", debianGRUB, "the signed GRUB that --shim-binary loads, served as grubx64.efi (Debian package grub-efi-amd64-signed)")
	arm64Shim := fset.String("arm64-shim-binary", "", "shim for arm64 UEFI machines (shimaa64.efi.signed from shim-signed:arm64): their loader when --arm64-binary is empty, or when theirs is grub")
	arm64GRUB := fset.String("arm64-grub-binary", "", "the signed GRUB that --arm64-shim-binary loads (grubnetaa64.efi.signed from grub-efi-arm64-signed:arm64)")
	sbCert := fset.String("secure-boot-cert", "", "PEM certificates of the machines' Secure Boot db: --efi-binary and --arm64-binary must be signed for it to start, and every kernel under /assets/ for a tree to be served")
	accessMode := &choice{value: "auto", allowed: access.Modes()}
	fset.Var(accessMode, "access", "who gets a machine's script and config: auto (the machine itself for groups whose profile uses a secret, anyone for the rest), machine (the machine itself, always) or open (anyone; a tree with a secret is refused)")
	tokenTTL := fset.Duration("access-token-ttl", access.DefaultTokenTTL, "how long the token in a routed machine's script lets it fetch its config")
	var u updaterFlags
	u.register(fset, "omaha-", true)
	var sf secretsFlags
	sf.register(fset, false)
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	u.assetsDir = *assetsDir
	// Lines are buffered: every message to stderr after this point goes
	// through fail, which flushes them first, so a fatal error is the
	// last thing printed.
	logOut := newBufferedLog(stderr)
	defer logOut.Close()
	fail := func(code int, err error) int {
		logOut.Close()
		fmt.Fprintf(stderr, "pxeops serve: %s\n", serveFlagError(err))
		return code
	}
	switch {
	case fset.NArg() > 0:
		return fail(exitUsage, fmt.Errorf("unexpected argument %q; the tree is given with --source", fset.Arg(0)))
	case *src == "":
		return fail(exitUsage, errors.New("--source is required: a directory or a git URL (try --source examples/quickstart)"))
	}
	log := newLogger(logOut, nf.level.value, nf.format.value)
	if !given(fset, "shim-binary") && !given(fset, "grub-binary") && !(exists(*shimFile) && exists(*grubFile)) {
		*shimFile, *grubFile = "", ""
		if *proxyDHCP {
			log.Info("GRUB route off for x86-64: no shim and GRUB at the defaults (apt-get install shim-signed grub-efi-amd64-signed)", "shim", debianShim, "grub", debianGRUB)
		}
	}
	// The updater's flags are checked whether or not the tree will turn
	// it on: the tree is not loaded yet.
	upd, err := u.updater(log, nil)
	if err != nil {
		return fail(exitUsage, err)
	}
	cfg := daemon.Config{
		Source: *src, StateDir: g.stateDir,
		AssetsDir: *assetsDir, TLSAdmin: ta,
		ProxyDHCP: *proxyDHCP, ProxyDHCP6: *proxyDHCP6, SecureBootCert: *sbCert,
		ShimBinary: *shimFile, GRUBBinary: *grubFile, ARM64ShimBinary: *arm64Shim, ARM64GRUBBinary: *arm64GRUB,
		Updater: upd, UpdaterOff: "--assets-dir is required: where verified images are kept and served from",
		Version: version, Logger: log,
		AccessTokenTTL: *tokenTTL,
	}
	nf.apply(&cfg)
	if cfg.Access, err = access.ParseMode(accessMode.value); err != nil {
		return fail(exitUsage, fmt.Errorf("--access: %w", err)) // choice took it: cannot happen
	}
	var shared *source.Clone // the git source's clone, which the updater shares
	if source.IsGitURL(*src) {
		repo, err := g.source(*src, *poll, log)
		if err != nil {
			return fail(exitUsage, err)
		}
		cfg.Tree, shared = repo, repo.Clone()
	} else {
		dir, err := source.NewDir(*src, source.DirOptions{Poll: *poll, Watch: *watch, Logger: log})
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--source: %w", err))
		}
		defer dir.Close()
		cfg.Tree = dir
	}
	if cfg.Tree, err = sf.source(cfg.Tree, source.DirOptions{Poll: *poll, Watch: *watch, Logger: log}); err != nil {
		return fail(exitUsage, err)
	}
	if cfg.WebhookSecret, err = g.webhookSecret(source.IsGitURL(*src)); err != nil {
		return fail(exitUsage, err)
	}
	ref := g.ref
	if !source.IsGitURL(*src) {
		ref = "HEAD" // a directory source serves its work tree; updates start from its HEAD
	}
	cfg.OpenUpdateRepo = func(ctx context.Context) (*propose.Repo, error) {
		opts := g
		opts.ref = ref
		return opts.openUpdateRepo(ctx, *src, shared)
	}
	if err := cfg.Validate(); err != nil {
		return fail(exitUsage, err)
	}
	defer reloadOnHangup(log, cfg.Tree.Trigger)()
	if err := cfg.Run(ctx); err != nil {
		return fail(exitInvalid, err)
	}
	return exitOK
}

// serveFlags names, for each daemon.Config field, the flag it comes from.
var serveFlags = map[string]string{
	"Source": "--source", "StateDir": "--state-dir", "HTTPAddr": "--http-addr", "ServerURL": "--server-url",
	"AssetsDir": "--assets-dir", "AccessTokenTTL": "--access-token-ttl", "TFTPAddr": "--tftp-addr", "IPXEDir": "--ipxe-dir", "Interface": "--interface",
	"TLSCert": "--tls-cert", "TLSKey": "--tls-key", "HTTPSAddr": "--https-addr", "HTTPSURL": "--https-url", "AdminAddr": "--admin-addr",
	"SecureBootCert": "--secure-boot-cert", "ShimBinary": "--shim-binary", "GRUBBinary": "--grub-binary",
	"ARM64ShimBinary": "--arm64-shim-binary", "ARM64GRUBBinary": "--arm64-grub-binary",
}

// Debian's signed shim and network GRUB: the GRUB route's defaults.
const (
	debianShim = "/usr/lib/shim/shimx64.efi.signed"
	debianGRUB = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
)

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// serveFlagError says err in the flags' terms: a daemon.FieldError names
// its flag as the user typed it.
func serveFlagError(err error) string {
	var fe *daemon.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	name := serveFlags[fe.Field]
	if name == "" {
		name = fe.Field
	}
	msg := name
	if fe.Value != "" {
		msg += " " + fe.Value
	}
	msg += ": " + fe.Err.Error()
	if fe.Field == "StateDir" && fe.Value == noHomeStateDir {
		msg += " (the default when HOME is unset or empty: give --state-dir)"
	}
	return msg
}
