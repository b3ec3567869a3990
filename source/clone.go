package source

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CloneDir is where a git remote is cloned under a state dir: one bare
// clone per state dir, shared by the git source and the updater.
func CloneDir(stateDir string) string { return filepath.Join(stateDir, "repo.git") }

// removeLegacyClone deletes the updater's own clone an earlier version
// kept beside repo.git: nothing reads it any more, and one made before
// credentials were kept out of clones may still hold them in its config.
func removeLegacyClone(stateDir string, log *slog.Logger) {
	dir := filepath.Join(stateDir, "omaha.git")
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("could not remove the earlier version's clone; delete it by hand", "dir", dir, "err", err)
		return
	}
	log.Info("removed the earlier version's clone, no longer used", "dir", dir)
}

// Clone is one git repository on disk and the lock every user of it
// holds: go-git's storage is not safe for concurrent use, so the git
// source's ls-remote, fetch and tree reads and the updater's fetch,
// commit and push all run under Clone's one mutex, whichever of them
// opened it. A bare clone (NewBare) is opened, or made, on first use; an
// operator's repository (OpenLocal) is used as it is.
type Clone struct {
	dir    string
	remote string // origin's URL, without credentials; "" for OpenLocal
	mu     sync.Mutex
	repo   *git.Repository
}

// NewBare is the bare clone of url in dir; it touches neither the disk
// nor the network until used.
func NewBare(dir, url string) *Clone { return &Clone{dir: dir, remote: Redact(url)} }

// OpenLocal opens the git repository holding dir (a work tree or a bare
// repository), for the updater working in an operator's clone.
func OpenLocal(dir string) (*Clone, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, err
	}
	return &Clone{dir: dir, repo: repo}, nil
}

// Remote is origin's URL without credentials; "" for an operator's
// repository.
func (c *Clone) Remote() string { return c.remote }

// Do runs f on the repository with the clone's lock held, opening (or,
// for a bare clone, making) it first. f must not keep the repository, or
// objects read from it, for use after it returns without the lock.
func (c *Clone) Do(f func(*git.Repository) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return err
	}
	return f(c.repo)
}

// open opens or makes the bare clone; c.mu held.
func (c *Clone) open() error {
	if c.repo != nil {
		return nil
	}
	repo, err := git.PlainOpen(c.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(filepath.Dir(c.dir), 0o700); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		repo, err = git.PlainInit(c.dir, true)
	}
	if err != nil {
		return fmt.Errorf("local clone %s: %w", c.dir, err)
	}
	// The clone follows the remote it is asked for even when it was made
	// for another URL, and stores it without credentials: one an older
	// pxeops stored with them is rewritten here.
	cfg, err := repo.Config()
	if err != nil {
		return fmt.Errorf("local clone %s: %w", c.dir, err)
	}
	if rc := cfg.Remotes["origin"]; rc == nil || len(rc.URLs) != 1 || rc.URLs[0] != c.remote {
		cfg.Remotes["origin"] = &config.RemoteConfig{Name: "origin", URLs: []string{c.remote}}
		if err := repo.SetConfig(cfg); err != nil {
			return fmt.Errorf("local clone %s: %w", c.dir, err)
		}
	}
	c.repo = repo
	return nil
}

// reset deletes a bare clone, to be made anew on next use.
func (c *Clone) reset() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote == "" {
		return errors.New("an operator's repository is not deleted")
	}
	c.repo = nil
	return os.RemoveAll(c.dir)
}

// CommitFS is the tree of commit below subdir, read into memory the way
// the git source reads it, for tools that load one commit (the updater).
// Files outside what the schema reads are read later under the clone's
// lock. commit must come from this clone.
func (c *Clone) CommitFS(commit *object.Commit, subdir string) (fs.FS, error) {
	c.mu.Lock()
	tree, err := commit.Tree()
	if err == nil && subdir != "" {
		tree, err = tree.Tree(subdir)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	ct := &commitTree{mu: &c.mu, tree: tree, when: commit.Committer.When}
	fsys, _, err := ct.snapshot(nil)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	return fsys, nil
}

// CleanPath is a --path as stored: slash-separated, relative, without
// "." or trailing slashes; "" for the top. A path that leaves the
// repository (absolute, or ".." past the top) is refused, not clamped.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	clean := filepath.ToSlash(filepath.Clean(p))
	if strings.HasPrefix(clean, "../") || clean == ".." || filepath.IsAbs(p) {
		return "", fmt.Errorf("--path %q: a directory inside the repository", p)
	}
	clean = strings.Trim(clean, "/")
	if clean == "." {
		clean = ""
	}
	return clean, nil
}

// Jitter is d moved by up to ±10% at random, so that many servers
// polling one remote (or one update service) spread out.
func Jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()-0.5)*0.2*float64(d))
}
