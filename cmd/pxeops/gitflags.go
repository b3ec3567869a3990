package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/source"
)

// tokenEnv holds an HTTPS token; secrets never come from the command line.
const tokenEnv = "PXEOPS_GIT_TOKEN"

// gitFlags are the flags of git sources, shared by serve and check.
type gitFlags struct {
	ref, path, stateDir           string
	sshKey, knownHosts, tokenFile string
	verifyCommits                 string
	verifyMode                    *choice
	webhookSecretFile             string
}

func (g *gitFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&g.ref, "ref", "main", "git: branch, tag or full commit hash to serve")
	fset.StringVar(&g.path, "path", "", "git: subdirectory of the repository that holds the config tree")
	fset.StringVar(&g.sshKey, "ssh-key", "", "git over SSH: private key file (needs --known-hosts)")
	fset.StringVar(&g.knownHosts, "known-hosts", "", "git over SSH: known_hosts file; host keys are always checked")
	fset.StringVar(&g.tokenFile, "token-file", "", "git over HTTPS: file holding a token (or set "+tokenEnv+")")
	fset.StringVar(&g.verifyCommits, "verify-commits", "", "git: armored OpenPGP keyring; only revisions signed by its keys are served")
	g.verifyMode = &choice{value: source.VerifyHead, allowed: []string{source.VerifyHead, source.VerifyTags}}
	fset.Var(g.verifyMode, "verify-mode", "with --verify-commits: head (the commit is signed) or tags (the ref is a signed tag)")
	if fset.Name() == "serve" {
		fset.StringVar(&g.stateDir, "state-dir", defaultStateDir(), "where the git clone and the machine state (machines.db: the machines whose installer reported) are kept across restarts")
		fset.StringVar(&g.webhookSecretFile, "webhook-secret-file", "", "git: file holding the secret of POST /hooks/git (GitHub HMAC or GitLab token)")
	}
}

// registerPropose registers the flags of a command that proposes a
// change on a branch of the repository (omaha sync, discover); what is
// the proposal, for the --ref help.
func (g *gitFlags) registerPropose(fset *flag.FlagSet, what string) {
	fset.StringVar(&g.ref, "ref", "main", "branch (or tag, or commit) "+what+" is based on")
	fset.StringVar(&g.path, "path", "", "subdirectory of the repository that holds the config tree")
	fset.StringVar(&g.stateDir, "state-dir", defaultStateDir(), "where a git URL is cloned (repo.git, the one serve keeps)")
	fset.StringVar(&g.sshKey, "ssh-key", "", "git over SSH: private key file (needs --known-hosts)")
	fset.StringVar(&g.knownHosts, "known-hosts", "", "git over SSH: known_hosts file; host keys are always checked")
	fset.StringVar(&g.tokenFile, "token-file", "", "git over HTTPS: file holding a token (or set "+tokenEnv+")")
}

func defaultStateDir() string { return defaultStateDirFor(os.Geteuid()) }

// defaultStateDirFor is the default for user euid. Without HOME there is
// no cache directory and the default is relative, which serve refuses.
func defaultStateDirFor(euid int) string {
	if euid == 0 {
		return "/var/lib/pxeops"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "pxeops")
	}
	return noHomeStateDir
}

// noHomeStateDir is the default state dir of a user without HOME.
const noHomeStateDir = ".pxeops-state"

// source builds the git source for remote.
func (g *gitFlags) source(remote string, poll time.Duration, log *slog.Logger) (*source.Git, error) {
	auth, err := source.Auth(remote, source.AuthOptions{SSHKey: g.sshKey, KnownHosts: g.knownHosts, TokenFile: g.tokenFile, TokenEnv: tokenEnv})
	if err != nil {
		return nil, err
	}
	var verifier *source.Verifier
	if g.verifyCommits != "" {
		keyring, err := safefile.ReadFile(g.verifyCommits, safefile.MaxKeySize)
		if err != nil {
			return nil, fmt.Errorf("--verify-commits: %w", err)
		}
		if verifier, err = source.NewVerifier(keyring, g.verifyMode.value); err != nil {
			return nil, fmt.Errorf("--verify-commits %s: %w", g.verifyCommits, err)
		}
	}
	return source.NewGit(source.GitOptions{
		URL: remote, Ref: g.ref, Path: g.path, StateDir: g.stateDir, Poll: poll,
		Auth: auth, Verify: verifier, Logger: log,
	})
}

// webhookSecret reads the webhook secret, which only a git source uses.
func (g *gitFlags) webhookSecret(isGit bool) ([]byte, error) {
	if g.webhookSecretFile == "" {
		return nil, nil
	}
	if !isGit {
		return nil, errors.New("--webhook-secret-file: the webhook triggers git fetches; the source is a directory")
	}
	b, err := safefile.ReadFile(g.webhookSecretFile, safefile.MaxKeySize)
	if err != nil {
		return nil, fmt.Errorf("--webhook-secret-file: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < 16 {
		return nil, errors.New("--webhook-secret-file: the secret is shorter than 16 characters")
	}
	return secret, nil
}

// fetchOnce fetches remote into a throwaway state dir and returns its
// tree, for check and render.
func (g *gitFlags) fetchOnce(ctx context.Context, remote string) (source.Revision, func(), error) {
	tmp, err := os.MkdirTemp("", "pxeops-check-")
	if err != nil {
		return source.Revision{}, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	g.stateDir = tmp
	repo, err := g.source(remote, time.Minute, nil)
	if err != nil {
		cleanup()
		return source.Revision{}, nil, usageError{err}
	}
	rev, err := repo.Once(ctx)
	if err != nil {
		cleanup()
		return source.Revision{}, nil, err
	}
	return rev, cleanup, nil
}

// usageError is a flag's value refused before any fetch (a key file that
// is missing or a named pipe): exit 2, as serve gives for the same flags.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
