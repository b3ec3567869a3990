package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/pxeops/pxeops/source"
)

// Repo is the config repository updates are proposed to: a local clone
// the operator owns (branches are made in it, pushed to origin), or a
// remote URL in a bare clone of pxeops' own, the git source's when serve
// serves the same remote. Git itself (clones, the lock, reading trees,
// path rules, redaction) is source's; Repo adds the commit and the push.
type Repo struct {
	clone  *source.Clone // every use of its repository holds its lock
	ref    string
	base   *object.Commit
	subdir string
	auth   transport.AuthMethod
	redact source.Redactor
}

// RepoOptions say where the repository is.
type RepoOptions struct {
	// Location is a directory holding a git repository, or a git URL.
	Location string
	// Ref is the served branch (or tag, or commit) updates are based on.
	Ref string
	// Path is the config tree's directory inside the repository
	// (source.CleanPath: one that leaves the repository is refused).
	Path string
	// CloneDir is where a URL is cloned when Clone is nil: a bare clone
	// of pxeops' own (source.CloneDir of the state dir).
	CloneDir string
	// Clone, when set, is the git source's clone of Location
	// (source.Git.Clone): the updater fetches, commits and pushes in it,
	// under its lock, instead of keeping a second clone of the remote.
	Clone *source.Clone
	// Auth authenticates to a URL (see source.Auth); nil: the
	// credentials in the URL, if any.
	Auth transport.AuthMethod
}

// OpenRepo opens or clones the repository and resolves Ref. Its errors,
// and Propose's, never show the URL's credentials or the token.
func OpenRepo(ctx context.Context, o RepoOptions) (*Repo, error) {
	if o.Auth == nil && source.IsGitURL(o.Location) {
		o.Auth, _ = source.Auth(o.Location, source.AuthOptions{}) // no files to read: cannot fail
	}
	redact := source.NewRedactor(o.Location, o.Auth)
	r, err := openRepo(ctx, o)
	if err != nil {
		return nil, redact.Error(err)
	}
	r.redact = redact
	return r, nil
}

func openRepo(ctx context.Context, o RepoOptions) (*Repo, error) {
	subdir, err := source.CleanPath(o.Path)
	if err != nil {
		return nil, err
	}
	r := &Repo{ref: o.Ref, subdir: subdir, auth: o.Auth}
	if source.IsGitURL(o.Location) {
		r.clone = o.Clone
		if r.clone == nil {
			r.clone = source.NewBare(o.CloneDir, o.Location)
		} else if remote := source.Redact(o.Location); r.clone.Remote() != remote {
			return nil, fmt.Errorf("the shared clone follows %s, not %s", r.clone.Remote(), remote)
		}
		err = r.clone.Do(func(repo *git.Repository) error { return fetchBranches(ctx, repo, o) })
	} else if r.clone, err = source.OpenLocal(o.Location); err != nil {
		err = fmt.Errorf("%s: %w (the updater commits its changes, so it needs a git repository)", o.Location, err)
	}
	if err != nil {
		return nil, err
	}
	err = r.clone.Do(func(repo *git.Repository) error {
		h, err := repo.ResolveRevision(plumbing.Revision(o.Ref))
		if err == nil {
			r.base, err = repo.CommitObject(*h)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("--ref %s: %w", o.Ref, err)
	}
	return r, nil
}

// fetchBranches mirrors the remote's branches into the bare clone (whose
// origin source points at the URL, stored without credentials: they
// travel as o.Auth), so existing update branches are seen and pushes go
// there. The git source's own refs live under refs/pxeops/ and are left
// alone.
func fetchBranches(ctx context.Context, repo *git.Repository, o RepoOptions) error {
	err := repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin", Auth: o.Auth, Force: true, Tags: git.NoTags,
		RefSpecs: []config.RefSpec{"+refs/heads/*:refs/heads/*"},
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", source.Redact(o.Location), err)
	}
	return nil
}

// Base is the commit updates are based on.
func (r *Repo) Base() string { return r.base.Hash.String() }

// Tree is the config tree at the base commit.
func (r *Repo) Tree() (fs.FS, error) { return r.clone.CommitFS(r.base, r.subdir) }

// Proposal is one change to one file of the config tree, on its own
// branch.
type Proposal struct {
	Branch  string
	File    string // relative to the config tree
	Content []byte
	Message string
	Author  object.Signature
	// SignKey, when set, signs the commit.
	SignKey *pgp.Entity
	Push    bool
	// AllowRef permits Branch to be the served ref itself.
	AllowRef bool
}

// Outcome is what Propose did.
type Outcome struct {
	Commit  string
	Changed bool // a new commit was made
	Pushed  bool
}

// Propose commits p on top of the base commit to refs/heads/<Branch>,
// replacing what the branch held (a newer release supersedes an open
// proposal), and pushes it with --force when asked. When the branch
// already holds exactly this change on this base, nothing is committed.
func (r *Repo) Propose(ctx context.Context, p Proposal) (Outcome, error) {
	if !p.AllowRef && (p.Branch == r.ref || "refs/heads/"+p.Branch == r.ref) {
		return Outcome{}, fmt.Errorf("branch %s is the served ref: updates go to a branch of their own for review", p.Branch)
	}
	branch := plumbing.NewBranchReferenceName(p.Branch)
	if err := branch.Validate(); err != nil {
		return Outcome{}, fmt.Errorf("branch %q: %w", p.Branch, err)
	}
	var out Outcome
	err := r.clone.Do(func(repo *git.Repository) error {
		var err error
		out, err = r.commit(repo, branch, p)
		return err
	})
	if err != nil || !p.Push {
		return out, err
	}
	push := &git.PushOptions{
		RemoteName: "origin", Auth: r.auth,
		RefSpecs: []config.RefSpec{config.RefSpec("+" + branch + ":" + branch)},
	}
	err = r.clone.Do(func(repo *git.Repository) error { return repo.PushContext(ctx, push) })
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return out, r.redact.Error(fmt.Errorf("push %s: %w", p.Branch, err))
	}
	out.Pushed = true
	return out, nil
}

// commit writes p's commit; the clone's lock held.
func (r *Repo) commit(repo *git.Repository, branch plumbing.ReferenceName, p Proposal) (Outcome, error) {
	baseTree, err := r.base.Tree()
	if err != nil {
		return Outcome{}, err
	}
	blob, err := store(repo, plumbing.BlobObject, p.Content)
	if err != nil {
		return Outcome{}, err
	}
	file := path.Join(r.subdir, p.File)
	treeHash, err := replace(repo, baseTree, strings.Split(file, "/"), blob)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", file, err)
	}
	if treeHash == baseTree.Hash {
		return Outcome{Commit: r.base.Hash.String()}, nil
	}
	if ref, err := repo.Reference(branch, true); err == nil {
		if c, err := repo.CommitObject(ref.Hash()); err == nil && c.TreeHash == treeHash && slices.Equal(c.ParentHashes, []plumbing.Hash{r.base.Hash}) {
			return Outcome{Commit: c.Hash.String()}, nil
		}
	}
	c := &object.Commit{
		Author: p.Author, Committer: p.Author, Message: p.Message,
		TreeHash: treeHash, ParentHashes: []plumbing.Hash{r.base.Hash},
	}
	if p.SignKey != nil {
		if err := sign(c, p.SignKey); err != nil {
			return Outcome{}, fmt.Errorf("sign commit: %w", err)
		}
	}
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return Outcome{}, err
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return Outcome{}, err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(branch, h)); err != nil {
		return Outcome{}, err
	}
	return Outcome{Commit: h.String(), Changed: true}, nil
}

// replace writes the trees from tree down to parts with the file's blob
// swapped for blob, and returns the new top tree's hash.
func replace(repo *git.Repository, tree *object.Tree, parts []string, blob plumbing.Hash) (plumbing.Hash, error) {
	entries := slices.Clone(tree.Entries)
	i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == parts[0] })
	if i < 0 {
		return plumbing.ZeroHash, fmt.Errorf("%s is not in the commit", parts[0])
	}
	if len(parts) == 1 {
		if !entries[i].Mode.IsFile() || entries[i].Mode == filemode.Symlink {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a regular file", parts[0])
		}
		entries[i].Hash = blob
	} else {
		sub, err := tree.Tree(parts[0])
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if entries[i].Hash, err = replace(repo, sub, parts[1:], blob); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	obj := repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

func store(repo *git.Repository, t plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(t)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// sign adds an armored OpenPGP signature over the commit's encoding.
func sign(c *object.Commit, key *pgp.Entity) error {
	unsigned := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(unsigned); err != nil {
		return err
	}
	rd, err := unsigned.Reader()
	if err != nil {
		return err
	}
	var sig bytes.Buffer
	if err := pgp.ArmoredDetachSign(&sig, key, rd, nil); err != nil {
		return err
	}
	c.PGPSignature = sig.String()
	return nil
}
