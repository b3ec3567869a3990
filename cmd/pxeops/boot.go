package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pxeops/pxeops/internal/daemon"
	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/source/pixiecoreapi"
	"github.com/pxeops/pxeops/source/static"
)

// runBoot is Pixiecore's static mode: every PXE machine boots KERNEL with
// INITRDs and --cmdline, with no repository. The tree is built in memory
// and served by the same daemon as serve.
func runBoot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("boot", "boot KERNEL [INITRD...] [--cmdline ARGS] [--interface IFACE] [flags]\n       pxeops boot --api URL --interface IFACE [flags]\n\n"+
		"Boots every PXE machine into KERNEL (a local file or an http(s) URL) with the INITRDs and --cmdline, as Pixiecore's static mode does; no repository.\n"+
		"With --interface, ProxyDHCP answers PXE clients there (needs root); without it, only HTTP (and --tftp-addr) serve, for a DHCP server that chains to /boot.ipxe.", stderr)
	cmdline := fset.String("cmdline", "", "the kernel command line, one string split at spaces; taken literally ({{ is no template)")
	api := fset.String("api", "", "Pixiecore's API mode instead of KERNEL: ask GET URL/v1/boot/<mac> what each PXE machine boots (needs --interface)")
	var nf netFlags
	nf.register(fset)
	pos, code := parseInterspersed(fset, args, stderr)
	if code >= 0 {
		return code
	}
	logOut := newBufferedLog(stderr)
	defer logOut.Close()
	fail := func(code int, err error) int {
		logOut.Close()
		fmt.Fprintf(stderr, "pxeops boot: %s\n", serveFlagError(err))
		return code
	}
	switch {
	case *api != "" && (len(pos) > 0 || *cmdline != ""):
		return fail(exitUsage, errors.New("--api: the API says what each machine boots; give no KERNEL, INITRD or --cmdline"))
	case *api != "" && nf.iface == "":
		return fail(exitUsage, errors.New("--api needs --interface: machines are asked about when ProxyDHCP sees them"))
	case *api == "" && len(pos) == 0:
		return fail(exitUsage, errors.New("a KERNEL is required: a local file or an http(s) URL, then any INITRDs (or --api URL)"))
	}
	log := newLogger(logOut, nf.level.value, nf.format.value)
	if *api != "" {
		return bootAPI(ctx, *api, nf, log, fail)
	}
	assets, err := os.MkdirTemp("", "pxeops-boot-")
	if err != nil {
		return fail(exitInvalid, err)
	}
	defer os.RemoveAll(assets)
	b := static.Boot{Args: strings.Fields(*cmdline)}
	for i, p := range pos {
		u, copied, err := stageBootFile(assets, i, p)
		if err != nil {
			return fail(exitUsage, err)
		}
		if copied {
			log.Info("copied into the assets directory: a hard link was not possible", "file", p, "dir", assets)
		}
		if i == 0 {
			b.Kernel = u
		} else {
			b.Initrds = append(b.Initrds, u)
		}
	}
	tree, err := static.Tree(b)
	if err != nil {
		return fail(exitUsage, err)
	}
	// The tree never changes: one that does not load is a usage error
	// now, not a server that waits for a fix that cannot come.
	if _, diags := render.Load(ctx, tree, render.Options{ServerURL: "http://localhost"}); diags.Errors() > 0 {
		return fail(exitUsage, errors.New(strings.TrimPrefix(diags.FirstError(), "profiles/boot.yaml:")))
	}
	src, err := static.New("pxeops boot "+strings.Join(pos, " "), tree)
	if err != nil {
		return fail(exitInvalid, err)
	}
	cfg := daemon.Config{Source: "boot", Tree: src, AssetsDir: assets, ProxyDHCP: nf.iface != "", Version: version, Logger: log,
		UpdaterOff: "pxeops boot has no repository"}
	return runDaemon(ctx, &cfg, nf, fail)
}

// bootAPI is Pixiecore's API mode: every PXE client ProxyDHCP sees is
// asked about in the background; the machines the API boots become the
// tree's groups, and their retransmitted DISCOVER is answered.
func bootAPI(ctx context.Context, api string, nf netFlags, log *slog.Logger, fail func(int, error) int) int {
	client, err := pixiecoreapi.New(api, pixiecoreapi.Options{})
	if err != nil {
		return fail(exitUsage, fmt.Errorf("--api %s: %w", api, err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := pixiecoreapi.NewSource(client)
	cfg := daemon.Config{Source: "pixiecore-api " + api, Tree: src, ProxyDHCP: true, Version: version, Logger: log,
		Seen: src.Asker(ctx, 4, 256), UpdaterOff: "pxeops boot has no repository"}
	return runDaemon(ctx, &cfg, nf, fail)
}

// runDaemon applies the shared flags to cfg and runs it until ctx ends.
func runDaemon(ctx context.Context, cfg *daemon.Config, nf netFlags, fail func(int, error) int) int {
	nf.apply(cfg)
	if err := cfg.Validate(); err != nil {
		return fail(exitUsage, err)
	}
	if err := cfg.Run(ctx); err != nil {
		return fail(exitInvalid, err)
	}
	return exitOK
}

// parseInterspersed parses flags before, between and after the
// positional arguments, as Pixiecore's command line allows (`boot
// vmlinuz initrd --cmdline ...`); after "--" every argument is
// positional. It returns the positional arguments, and the exit code to
// stop with or -1.
func parseInterspersed(fset *flag.FlagSet, args []string, stderr io.Writer) ([]string, int) {
	var pos []string
	for len(args) > 0 {
		if err := fset.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitUsage
		}
		rest := fset.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	// The environment, for the flags not given.
	if code := parseFlags(fset, nil, stderr); code >= 0 {
		return nil, code
	}
	return pos, -1
}

// safeName is what may appear as a file name in a boot URL as it is.
var safeName = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,128}$`)

// stageBootFile returns the boot URL of KERNEL or INITRD p: an http(s) URL
// as it is, a local file as /assets/<i>/<name> after hard-linking it into
// dir (or copying it, when the link fails: another file system). The
// assets are served from dir alone, so nothing beside the file is
// exposed, and the confinement (os.Root) never meets a symlink.
func stageBootFile(dir string, i int, p string) (url string, copied bool, err error) {
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		return p, false, nil
	}
	info, err := os.Stat(p)
	if err != nil {
		return "", false, err
	}
	if !info.Mode().IsRegular() {
		return "", false, fmt.Errorf("%s: not a regular file", p)
	}
	name := filepath.Base(p)
	if !safeName.MatchString(name) || name == "." || name == ".." {
		name = "kernel"
		if i > 0 {
			name = "initrd"
		}
	}
	sub := filepath.Join(dir, strconv.Itoa(i))
	if err := os.Mkdir(sub, 0o755); err != nil {
		return "", false, err
	}
	to := filepath.Join(sub, name)
	url = "/assets/" + strconv.Itoa(i) + "/" + name
	if os.Link(p, to) == nil {
		return url, false, nil
	}
	if err := copyFile(p, to); err != nil {
		return "", false, fmt.Errorf("%s: %w", p, err)
	}
	return url, true, nil
}

func copyFile(from, to string) error {
	in, err := safefile.Open(from) // swapped for a FIFO since the stat: refused, never waited on
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
