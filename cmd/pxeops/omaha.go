package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/mail"
	"os"
	"slices"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

func runOmaha(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "sync" {
		fmt.Fprint(stderr, "Usage: pxeops omaha sync --repo DIR|GIT-URL --assets-dir DIR [--push] [flags]\n\nRun \"pxeops omaha sync --help\" for the flags.\n")
		return exitUsage
	}
	fset := newFlags("omaha sync", "omaha sync --repo DIR|GIT-URL --assets-dir DIR [--push] [flags]\n\n"+
		"One pass of the image updater: for each image with update: omaha, ask the update\n"+
		"service, download a newer release and its signatures, verify them, keep them in\n"+
		"the asset store and commit the edited images/<id>.yaml to its own branch.\n"+
		"Exit 0 when every image is current or proposed, 1 when one failed.", stderr)
	repoFlag := fset.String("repo", "", "config repository: a local git repository, or a git URL (required)")
	var g gitFlags
	g.registerPropose(fset, "the update")
	var u updaterFlags
	fset.StringVar(&u.assetsDir, "assets-dir", "", "asset store: verified images land in <dir>/<sha256>/<file>, served at /assets/ (required)")
	u.register(fset, "", false)
	if code := parseFlags(fset, args[1:], stderr); code >= 0 {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pxeops omaha sync: "+format+"\n", a...)
		return exitUsage
	}
	if fset.NArg() > 0 {
		return usage("unexpected argument %q; the repository is given with --repo", fset.Arg(0))
	}
	if *repoFlag == "" {
		return usage("--repo is required: a local git repository or a git URL")
	}
	if u.assetsDir == "" {
		return usage("--assets-dir is required: where verified images are kept and served from")
	}
	log := newLogger(stderr, "info", "text")
	upd, err := u.updater(log, stderr)
	if err != nil {
		return usage("%v", err)
	}
	repo, err := g.openUpdateRepo(ctx, *repoFlag, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops omaha sync: %v\n", err)
		return exitInvalid
	}
	results, err := upd.Sync(ctx, repo)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops omaha sync: %v\n", err)
		return exitInvalid
	}
	code := exitOK
	for _, id := range slices.Sorted(maps.Keys(results)) {
		st := results[id]
		fmt.Fprintf(stdout, "%s: %s\n", id, describeUpdate(st))
		if st.State == updater.StateFailed {
			code = exitInvalid
		}
	}
	if len(results) == 0 {
		fmt.Fprintln(stdout, "no image has update: omaha; nothing to do")
	}
	return code
}

func describeUpdate(st updater.ImageStatus) string {
	switch st.State {
	case updater.StateUpToDate:
		return st.Current + " is current"
	case updater.StateProposed, updater.StateUnchanged:
		pushed := "not pushed (--push not given)"
		if st.Pushed {
			pushed = "pushed"
		}
		verb := "proposed"
		if st.State == updater.StateUnchanged {
			verb = "already proposed"
		}
		return fmt.Sprintf("%s → %s %s on branch %s (commit %.12s, %s)", st.Current, st.Latest, verb, st.Branch, st.Commit, pushed)
	case updater.StateNotPublished:
		return fmt.Sprintf("%s → %s announced but not on the mirror yet; the next pass retries: %s", st.Current, st.Latest, st.Error)
	}
	kind := "needs a person"
	if st.Retry {
		kind = "worth retrying"
	}
	return fmt.Sprintf("failed at %s (%s): %s", st.Stage, kind, st.Error)
}

// updaterFlags configure the updater, for omaha sync and serve.
type updaterFlags struct {
	prefix                     string // of the flags' names
	assetsDir, signKey, author string
	push, allowRef             bool
	maxFileSize                int64
}

// register adds the updater's flags, each name with prefix (serve says
// "omaha-"); the asset store is the caller's --assets-dir.
func (u *updaterFlags) register(fset *flag.FlagSet, prefix string, push bool) {
	u.prefix = prefix
	fset.BoolVar(&u.push, prefix+"push", push, "push the update branch to the repository's remote (origin)")
	fset.StringVar(&u.signKey, prefix+"sign-key", "", "armored OpenPGP private key (unencrypted) that signs update commits")
	fset.StringVar(&u.author, prefix+"author", "pxeops <pxeops@localhost>", "author and committer of update commits")
	fset.BoolVar(&u.allowRef, prefix+"allow-served-branch", false, "let omaha.branch name the served ref itself: merging is skipped, so no review")
	fset.Int64Var(&u.maxFileSize, prefix+"max-file-size", 4<<30, "largest file the updater downloads, in bytes")
}

// updater builds the updater from the flags, checked first; nil, and no
// error, without an assets dir (serve then runs without one).
func (u *updaterFlags) updater(log *slog.Logger, term io.Writer) (*updater.Updater, error) {
	author, err := mail.ParseAddress(u.author)
	if err != nil {
		return nil, fmt.Errorf("--%sauthor %q: want \"Name <email>\": %v", u.prefix, u.author, err)
	}
	if u.maxFileSize <= 0 {
		return nil, fmt.Errorf("--%smax-file-size %d: want a positive number of bytes", u.prefix, u.maxFileSize)
	}
	var key *pgp.Entity
	if u.signKey != "" {
		data, err := safefile.ReadFile(u.signKey, safefile.MaxKeySize)
		if err != nil {
			return nil, fmt.Errorf("--%ssign-key: %w", u.prefix, err)
		}
		keys, err := pgp.ReadArmoredKeyRing(bytes.NewReader(data))
		if err != nil || len(keys) == 0 || keys[0].PrivateKey == nil {
			return nil, fmt.Errorf("--%ssign-key %s: not an armored private key (%v)", u.prefix, u.signKey, err)
		}
		if keys[0].PrivateKey.Encrypted {
			return nil, fmt.Errorf("--%ssign-key %s: the key is passphrase-protected; export it without one for the updater", u.prefix, u.signKey)
		}
		key = keys[0]
	}
	if u.assetsDir == "" {
		return nil, nil
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: time.Minute}}
	store := &updater.Store{Dir: u.assetsDir, HTTP: hc, MaxSize: u.maxFileSize, Log: log}
	if f, ok := term.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			store.Progress = f
		}
	}
	return &updater.Updater{
		Client: &omaha.Client{HTTP: hc, UserAgent: userAgent(version)},
		Store:  store, Log: log,
		Author:  object.Signature{Name: author.Name, Email: author.Address},
		SignKey: key, Push: u.push, AllowRef: u.allowRef,
	}, nil
}

// openUpdateRepo opens a local repository or clones a URL into the state
// dir, for the updater; shared, when set, is the git source's clone of the
// same remote, used instead of the state dir's.
func (g *gitFlags) openUpdateRepo(ctx context.Context, location string, shared *source.Clone) (*propose.Repo, error) {
	opts := propose.Options{Location: location, Ref: g.ref, Path: g.path, CloneDir: source.CloneDir(g.stateDir), Clone: shared}
	if source.IsGitURL(location) {
		auth, err := source.Auth(location, source.AuthOptions{SSHKey: g.sshKey, KnownHosts: g.knownHosts, TokenFile: g.tokenFile, TokenEnv: tokenEnv})
		if err != nil {
			return nil, err
		}
		opts.Auth = auth
	}
	return propose.Open(ctx, opts)
}
