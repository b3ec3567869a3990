package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// GitOptions configure a git source.
type GitOptions struct {
	URL string
	// Ref is a branch, a tag, or a full commit hash; default "main".
	Ref string
	// Path is the config root inside the repository; default the top.
	Path string
	// StateDir holds the local clone, kept across restarts.
	StateDir string
	// Poll is the period of remote checks, jittered by ±10%.
	Poll time.Duration
	// Auth authenticates to the remote (see Auth); nil: the credentials
	// in URL, if any.
	Auth transport.AuthMethod
	// Verify, when set, checks each revision before it is served.
	Verify *Verifier
	Logger *slog.Logger
}

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Git is a git source. It keeps a bare clone under the state dir, asks
// the remote for the ref's hash first (ls-remote) and fetches only when
// it moved, with depth 1. Trees are read from the commit, and the commit
// hash is the revision. Anything that fails keeps the last good revision
// serving and is retried with backoff; a clone that cannot be used is
// made anew.
type Git struct {
	opts   GitOptions
	log    *slog.Logger
	remote string // the URL the clone stores: Redact(opts.URL)
	redact Redactor
	// clone is the bare clone and its lock, shared with the updater when
	// it proposes to the same remote (see Clone). Its repository is read
	// only inside clone.Do.
	clone *Clone

	trigger chan struct{}
	blobs   map[plumbing.Hash][]byte

	smu   sync.Mutex
	state State
}

// The local ref that names the last commit fetched and verified.
const headRef = plumbing.ReferenceName("refs/pxeops/head")

// NewGit prepares a git source; it does not touch the network.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no URL")
	}
	if opts.StateDir == "" {
		return nil, errors.New("git source: --state-dir is required to keep the clone")
	}
	if opts.Ref == "" {
		opts.Ref = "main"
	}
	if opts.Poll <= 0 {
		opts.Poll = 30 * time.Second
	}
	var err error
	if opts.Path, err = CleanPath(opts.Path); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Auth == nil {
		opts.Auth, _ = Auth(opts.URL, AuthOptions{}) // no files to read: cannot fail
	}
	remote := Redact(opts.URL)
	g := &Git{
		opts:    opts,
		log:     opts.Logger.With("source", remote),
		remote:  remote,
		clone:   NewBare(CloneDir(opts.StateDir), opts.URL),
		redact:  NewRedactor(opts.URL, opts.Auth),
		trigger: make(chan struct{}, 1),
	}
	if opts.StateDir != "" {
		removeLegacyClone(opts.StateDir, g.log)
	}
	g.state = State{Kind: "git", Location: remote + "@" + opts.Ref}
	if opts.Path != "" {
		g.state.Location += ":" + opts.Path
	}
	return g, nil
}

// State reports the source's health for /status.
func (g *Git) State() State {
	g.smu.Lock()
	defer g.smu.Unlock()
	return g.state
}

func (g *Git) setState(f func(*State)) {
	g.smu.Lock()
	defer g.smu.Unlock()
	f(&g.state)
}

// Clone is the source's bare clone, for the updater to share when it
// proposes to the same remote.
func (g *Git) Clone() *Clone { return g.clone }

// Trigger asks for a check of the remote now (the webhook). Triggers
// that arrive while one is pending are folded into it.
func (g *Git) Trigger() {
	select {
	case g.trigger <- struct{}{}:
	default:
	}
}

// Run emits the last fetched revision at once when the state dir holds
// one, then every new revision of the ref, until ctx ends.
func (g *Git) Run(ctx context.Context, emit func(Revision)) error {
	last := ""
	if rev, err := g.local(); err == nil {
		g.log.Info("serving the revision kept in the state dir until the remote answers", "revision", rev.ID)
		last = rev.ID
		emit(rev)
	} else if !errors.Is(err, errNoLocal) {
		g.log.Warn("local clone unusable; will clone again", "err", g.redact.Error(err))
	}
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-g.trigger:
			// A burst of webhooks is one fetch: wait for the burst to end.
			g.drainTriggers(ctx, 200*time.Millisecond)
		}
		rev, err := g.check(ctx)
		now := time.Now().UTC().Format(time.RFC3339Nano)
		if err != nil {
			failures++
			wait := min(g.opts.Poll, time.Second<<min(failures, 6))
			if last == "" {
				g.log.Warn("git check failed; nothing fetched yet, nothing is served until it succeeds", "err", err, "retry_in", wait)
			} else {
				g.log.Warn("git check failed; the last fetched revision keeps serving", "err", err, "retry_in", wait)
			}
			g.setState(func(s *State) { s.LastScan, s.LastError = now, err.Error() })
			timer.Reset(wait)
			continue
		}
		failures = 0
		g.setState(func(s *State) { s.LastScan, s.LastError = now, "" })
		if rev.ID != last {
			last = rev.ID
			emit(rev)
		}
		timer.Reset(Jitter(g.opts.Poll))
	}
}

func (g *Git) drainTriggers(ctx context.Context, quiet time.Duration) {
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-g.trigger:
			t.Reset(quiet)
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

var errNoLocal = errors.New("no local revision")

// local returns the last fetched revision from the state dir.
func (g *Git) local() (Revision, error) {
	if _, err := os.Stat(g.clone.dir); errors.Is(err, os.ErrNotExist) {
		return Revision{}, errNoLocal
	}
	var ref *plumbing.Reference
	err := g.clone.Do(func(repo *git.Repository) error {
		var err error
		if ref, err = repo.Reference(headRef, true); err != nil {
			return errNoLocal
		}
		return nil
	})
	if err != nil {
		return Revision{}, err
	}
	return g.revision(ref.Hash())
}

// check asks the remote where the ref points, fetches it when it moved,
// and returns the revision to serve. Its errors are redacted: they reach
// logs, /status and check's output.
func (g *Git) check(ctx context.Context) (Revision, error) {
	rev, err := g.checkRemote(ctx)
	return rev, g.redact.Error(err)
}

func (g *Git) checkRemote(ctx context.Context) (Revision, error) {
	g.setState(func(s *State) { s.Checks++ })
	target, err := g.resolveRemote(ctx)
	if err != nil {
		return Revision{}, err
	}
	rev, err := g.ensure(ctx, target)
	var unverified *VerifyError
	if err == nil || errors.As(err, &unverified) {
		return rev, err
	}
	// A clone that fails to fetch or to read a commit it should have is
	// not worth repairing: start over from the remote.
	g.log.Warn("fetch into the local clone failed; cloning again", "err", g.redact.Error(err))
	if err := g.clone.reset(); err != nil {
		return Revision{}, err
	}
	if _, err := g.resolveRemote(ctx); err != nil {
		return Revision{}, err
	}
	return g.ensure(ctx, target)
}

// remoteTarget is what the ref names on the remote.
type remoteTarget struct {
	name plumbing.ReferenceName // empty for a fixed commit
	hash plumbing.Hash
}

func (g *Git) resolveRemote(ctx context.Context) (remoteTarget, error) {
	var t remoteTarget
	err := g.clone.Do(func(repo *git.Repository) error {
		if commitHash.MatchString(g.opts.Ref) {
			t = remoteTarget{hash: plumbing.NewHash(g.opts.Ref)}
			return nil
		}
		remote, err := repo.Remote("origin")
		if err != nil {
			return err
		}
		refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: g.opts.Auth})
		if err != nil {
			return fmt.Errorf("ls-remote %s: %w", g.remote, err)
		}
		for _, want := range []plumbing.ReferenceName{
			plumbing.ReferenceName(g.opts.Ref),
			plumbing.NewBranchReferenceName(g.opts.Ref),
			plumbing.NewTagReferenceName(g.opts.Ref),
		} {
			for _, r := range refs {
				if r.Name() == want && r.Type() == plumbing.HashReference {
					t = remoteTarget{name: want, hash: r.Hash()}
					return nil
				}
			}
		}
		return fmt.Errorf("ref %q not found on %s (deleted branch or tag?)", g.opts.Ref, g.remote)
	})
	return t, err
}

// ensure fetches the target unless the clone has it, records it as the
// local head, and returns its revision.
func (g *Git) ensure(ctx context.Context, t remoteTarget) (Revision, error) {
	var commit *object.Commit
	err := g.clone.Do(func(repo *git.Repository) error {
		if _, err := repo.Object(plumbing.AnyObject, t.hash); err != nil {
			opts := &git.FetchOptions{Auth: g.opts.Auth, Force: true, Tags: git.NoTags}
			if t.name != "" {
				opts.Depth = 1
				opts.RefSpecs = []config.RefSpec{config.RefSpec("+" + string(t.name) + ":refs/pxeops/fetched")}
			} else {
				// A fixed commit can only be fetched through the branches
				// that contain it.
				opts.RefSpecs = []config.RefSpec{"+refs/heads/*:refs/pxeops/branches/*"}
			}
			err := repo.FetchContext(ctx, opts)
			if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
				return fmt.Errorf("fetch %s: %w", t.name, err)
			}
		}
		var err error
		commit, err = commitOf(repo, t.hash)
		return err
	})
	if err != nil {
		return Revision{}, err
	}
	if v := g.opts.Verify; v != nil {
		err := g.clone.Do(func(repo *git.Repository) error { return v.verify(repo, t.hash, commit) })
		if err != nil {
			return Revision{}, &VerifyError{err}
		}
	}
	err = g.clone.Do(func(repo *git.Repository) error {
		return repo.Storer.SetReference(plumbing.NewHashReference(headRef, t.hash))
	})
	if err != nil {
		return Revision{}, err
	}
	return g.revision(t.hash)
}

// commitOf peels a tag to its commit; the clone's lock held.
func commitOf(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	if tag, err := repo.TagObject(h); err == nil {
		return tag.Commit()
	}
	c, err := repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	return c, nil
}

// revision reads the tree of the commit h points to, below Path.
func (g *Git) revision(h plumbing.Hash) (Revision, error) {
	var commit *object.Commit
	var tree *object.Tree
	err := g.clone.Do(func(repo *git.Repository) error {
		var err error
		if commit, err = commitOf(repo, h); err != nil {
			return err
		}
		if tree, err = commit.Tree(); err != nil {
			return err
		}
		if g.opts.Path != "" {
			if tree, err = tree.Tree(g.opts.Path); err != nil {
				return fmt.Errorf("--path %s not in commit %s: %w", g.opts.Path, commit.Hash, err)
			}
		}
		return nil
	})
	if err != nil {
		return Revision{}, err
	}
	ct := &commitTree{mu: &g.clone.mu, tree: tree, when: commit.Committer.When}
	fsys, blobs, err := ct.snapshot(g.blobs)
	if err != nil {
		return Revision{}, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	g.blobs = blobs
	return Revision{ID: commit.Hash.String(), FS: fsys}, nil
}

// Once checks the remote one time and returns the revision to serve,
// for one-shot commands.
func (g *Git) Once(ctx context.Context) (Revision, error) { return g.check(ctx) }
