package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
	dir    string
	remote string // the URL the clone stores: Redact(opts.URL)
	redact Redactor
	mu     sync.Mutex // go-git's storage is not safe for concurrent use
	repo   *git.Repository

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
	if opts.Path != "" {
		clean := filepath.ToSlash(filepath.Clean(opts.Path))
		if strings.HasPrefix(clean, "../") || clean == ".." || filepath.IsAbs(opts.Path) {
			return nil, fmt.Errorf("--path %q: a directory inside the repository", opts.Path)
		}
		opts.Path = strings.Trim(clean, "/")
		if opts.Path == "." {
			opts.Path = ""
		}
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
		dir:     filepath.Join(opts.StateDir, "repo.git"),
		remote:  remote,
		redact:  NewRedactor(opts.URL, opts.Auth),
		trigger: make(chan struct{}, 1),
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
		timer.Reset(jitter(g.opts.Poll))
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

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()-0.5)*0.2*float64(d))
}

var errNoLocal = errors.New("no local revision")

// local returns the last fetched revision from the state dir.
func (g *Git) local() (Revision, error) {
	if _, err := os.Stat(g.dir); errors.Is(err, os.ErrNotExist) {
		return Revision{}, errNoLocal
	}
	g.mu.Lock()
	err := g.open()
	var ref *plumbing.Reference
	if err == nil {
		ref, err = g.repo.Reference(headRef, true)
		if err != nil {
			err = errNoLocal
		}
	}
	g.mu.Unlock()
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
	if err := g.reset(); err != nil {
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.open(); err != nil {
		return remoteTarget{}, err
	}
	if commitHash.MatchString(g.opts.Ref) {
		return remoteTarget{hash: plumbing.NewHash(g.opts.Ref)}, nil
	}
	remote, err := g.repo.Remote("origin")
	if err != nil {
		return remoteTarget{}, err
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: g.opts.Auth})
	if err != nil {
		return remoteTarget{}, fmt.Errorf("ls-remote %s: %w", g.remote, err)
	}
	for _, want := range []plumbing.ReferenceName{
		plumbing.ReferenceName(g.opts.Ref),
		plumbing.NewBranchReferenceName(g.opts.Ref),
		plumbing.NewTagReferenceName(g.opts.Ref),
	} {
		for _, r := range refs {
			if r.Name() == want && r.Type() == plumbing.HashReference {
				return remoteTarget{name: want, hash: r.Hash()}, nil
			}
		}
	}
	return remoteTarget{}, fmt.Errorf("ref %q not found on %s (deleted branch or tag?)", g.opts.Ref, g.remote)
}

// open opens or creates the bare clone; g.mu held.
func (g *Git) open() error {
	if g.repo != nil {
		return nil
	}
	repo, err := git.PlainOpen(g.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(g.opts.StateDir, 0o700); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		repo, err = git.PlainInit(g.dir, true)
	}
	if err != nil {
		return fmt.Errorf("local clone %s: %w", g.dir, err)
	}
	// The clone follows --source even when it was made for another URL,
	// and stores it without credentials: one an older pxeops stored with
	// them is rewritten here.
	cfg, err := repo.Config()
	if err != nil {
		return fmt.Errorf("local clone %s: %w", g.dir, err)
	}
	if rc := cfg.Remotes["origin"]; rc == nil || len(rc.URLs) != 1 || rc.URLs[0] != g.remote {
		cfg.Remotes["origin"] = &config.RemoteConfig{Name: "origin", URLs: []string{g.remote}}
		if err := repo.SetConfig(cfg); err != nil {
			return fmt.Errorf("local clone %s: %w", g.dir, err)
		}
	}
	g.repo = repo
	return nil
}

// reset deletes the local clone.
func (g *Git) reset() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.repo = nil
	return os.RemoveAll(g.dir)
}

// ensure fetches the target unless the clone has it, records it as the
// local head, and returns its revision.
func (g *Git) ensure(ctx context.Context, t remoteTarget) (Revision, error) {
	g.mu.Lock()
	have := false
	if _, err := g.repo.Object(plumbing.AnyObject, t.hash); err == nil {
		have = true
	}
	if !have {
		opts := &git.FetchOptions{Auth: g.opts.Auth, Force: true, Tags: git.NoTags}
		if t.name != "" {
			opts.Depth = 1
			opts.RefSpecs = []config.RefSpec{config.RefSpec("+" + string(t.name) + ":refs/pxeops/fetched")}
		} else {
			// A fixed commit can only be fetched through the branches
			// that contain it.
			opts.RefSpecs = []config.RefSpec{"+refs/heads/*:refs/pxeops/branches/*"}
		}
		err := g.repo.FetchContext(ctx, opts)
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			g.mu.Unlock()
			return Revision{}, fmt.Errorf("fetch %s: %w", t.name, err)
		}
	}
	commit, err := g.commitOf(t.hash)
	g.mu.Unlock()
	if err != nil {
		return Revision{}, err
	}
	if v := g.opts.Verify; v != nil {
		g.mu.Lock()
		err := v.verify(g.repo, t.hash, commit)
		g.mu.Unlock()
		if err != nil {
			return Revision{}, &VerifyError{err}
		}
	}
	g.mu.Lock()
	err = g.repo.Storer.SetReference(plumbing.NewHashReference(headRef, t.hash))
	g.mu.Unlock()
	if err != nil {
		return Revision{}, err
	}
	return g.revision(t.hash)
}

// commitOf peels a tag to its commit; g.mu held.
func (g *Git) commitOf(h plumbing.Hash) (*object.Commit, error) {
	if tag, err := g.repo.TagObject(h); err == nil {
		return tag.Commit()
	}
	c, err := g.repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	return c, nil
}

// revision reads the tree of the commit h points to, below Path.
func (g *Git) revision(h plumbing.Hash) (Revision, error) {
	g.mu.Lock()
	commit, err := g.commitOf(h)
	var tree *object.Tree
	if err == nil {
		tree, err = commit.Tree()
	}
	if err == nil && g.opts.Path != "" {
		tree, err = tree.Tree(g.opts.Path)
		if err != nil {
			err = fmt.Errorf("--path %s not in commit %s: %w", g.opts.Path, commit.Hash, err)
		}
	}
	g.mu.Unlock()
	if err != nil {
		return Revision{}, err
	}
	ct := &commitTree{mu: &g.mu, tree: tree, when: commit.Committer.When}
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
