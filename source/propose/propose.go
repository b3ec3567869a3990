// Package propose commits changes to a config repository on a branch of
// their own, for review: never the served ref unless asked, idempotent
// (a branch that already holds the change is left as it is), pushed to
// origin when asked, with credentials kept out of every error. The image
// updater proposes version bumps through it and discovery new group
// files. Git itself (clones, the lock, reading trees, path rules,
// redaction) is source's; this package adds the commit and the push.
package propose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
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

// Repo is the config repository changes are proposed to: a local clone
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

// Options say where the repository is.
type Options struct {
	// Location is a directory holding a git repository, or a git URL.
	Location string
	// Ref is the served branch (or tag, or commit) proposals are based on.
	Ref string
	// Path is the config tree's directory inside the repository
	// (source.CleanPath: one that leaves the repository is refused).
	Path string
	// CloneDir is where a URL is cloned when Clone is nil: a bare clone
	// of pxeops' own (source.CloneDir of the state dir).
	CloneDir string
	// Clone, when set, is the git source's clone of Location
	// (source.Git.Clone): proposals fetch, commit and push in it,
	// under its lock, instead of keeping a second clone of the remote.
	Clone *source.Clone
	// Auth authenticates to a URL (see source.Auth); nil: the
	// credentials in the URL, if any.
	Auth transport.AuthMethod
}

// Open opens or clones the repository and resolves Ref. Its errors,
// and Propose's, never show the URL's credentials or the token.
func Open(ctx context.Context, o Options) (*Repo, error) {
	if o.Auth == nil && source.IsGitURL(o.Location) {
		o.Auth, _ = source.Auth(o.Location, source.AuthOptions{}) // no files to read: cannot fail
	}
	redact := source.NewRedactor(o.Location, o.Auth)
	r, err := open(ctx, o)
	if err != nil {
		return nil, redact.Error(err)
	}
	r.redact = redact
	return r, nil
}

func open(ctx context.Context, o Options) (*Repo, error) {
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
		err = fmt.Errorf("%s: %w (proposals are commits, so it needs a git repository)", o.Location, err)
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
func fetchBranches(ctx context.Context, repo *git.Repository, o Options) error {
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

// BranchTree is the config tree at the tip of branch, what an open
// proposal holds, read like Tree; nil, and no error, when there is no such
// branch (or it lacks the config tree's directory).
func (r *Repo) BranchTree(branch string) (fs.FS, error) {
	name := plumbing.NewBranchReferenceName(branch)
	if err := name.Validate(); err != nil {
		return nil, fmt.Errorf("branch %q: %w", branch, err)
	}
	var tip *object.Commit
	err := r.clone.Do(func(repo *git.Repository) error {
		ref, err := repo.Reference(name, true)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil
		}
		if err == nil {
			tip, err = repo.CommitObject(ref.Hash())
		}
		return err
	})
	if err != nil {
		return nil, r.redact.Error(fmt.Errorf("branch %s: %w", branch, err))
	}
	if tip == nil {
		return nil, nil
	}
	fsys, err := r.clone.CommitFS(tip, r.subdir)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return nil, nil
	}
	return fsys, err
}

// MaxFiles bounds the files of one proposal.
const MaxFiles = 1024

// File is one file of a proposal: created, with the directories above it,
// when the base does not hold it; replaced (keeping its mode) when it
// does.
type File struct {
	// Path is slash-separated and relative to the config tree (Options.Path);
	// one that leaves it, or names .git, is refused.
	Path    string
	Content []byte
}

// Proposal is a change to files of the config tree, on its own branch.
type Proposal struct {
	Branch  string
	Files   []File
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
// replacing what the branch held (a newer proposal supersedes an open
// one), and pushes it with --force when asked. When the branch already
// holds exactly these files on this base, or the base does, nothing is
// committed.
func (r *Repo) Propose(ctx context.Context, p Proposal) (Outcome, error) {
	if !p.AllowRef && (p.Branch == r.ref || "refs/heads/"+p.Branch == r.ref) {
		return Outcome{}, fmt.Errorf("branch %s is the served ref: proposals go to a branch of their own for review", p.Branch)
	}
	branch := plumbing.NewBranchReferenceName(p.Branch)
	if err := branch.Validate(); err != nil {
		return Outcome{}, fmt.Errorf("branch %q: %w", p.Branch, err)
	}
	files, err := r.files(p.Files)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	err = r.clone.Do(func(repo *git.Repository) error {
		var err error
		out, err = r.commit(repo, branch, p, files)
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

// node is a directory of the files to write (kids), or one file (leaf).
type node struct {
	leaf    bool
	content []byte
	kids    map[string]*node
}

// files checks the paths and arranges them as a tree below the
// repository's top.
func (r *Repo) files(list []File) (*node, error) {
	if len(list) == 0 {
		return nil, errors.New("a proposal with no files")
	}
	if len(list) > MaxFiles {
		return nil, fmt.Errorf("%d files in one proposal, at most %d", len(list), MaxFiles)
	}
	top := &node{kids: map[string]*node{}}
	for _, f := range list {
		if err := CheckPath(f.Path); err != nil {
			return nil, err
		}
		n := top
		parts := strings.Split(path.Join(r.subdir, f.Path), "/")
		for i, part := range parts {
			if n.leaf {
				return nil, fmt.Errorf("%s: %s is a file of the same proposal", f.Path, strings.Join(parts[:i], "/"))
			}
			kid := n.kids[part]
			if kid == nil {
				kid = &node{kids: map[string]*node{}}
				n.kids[part] = kid
			} else if i == len(parts)-1 {
				return nil, fmt.Errorf("%s: given twice, or a directory of the same proposal", f.Path)
			}
			n = kid
		}
		n.leaf, n.content, n.kids = true, f.Content, nil
	}
	return top, nil
}

// CheckPath checks a file's path relative to the config tree: clean,
// relative, slash-separated, no control characters or backslashes, and
// no .git anywhere (git would refuse such a tree on checkout).
func CheckPath(p string) error {
	if !fs.ValidPath(p) || p == "." || strings.ContainsAny(p, "\\") || strings.ContainsFunc(p, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return fmt.Errorf("file %q: want a clean relative path such as groups/node1.yaml", p)
	}
	for part := range strings.SplitSeq(p, "/") {
		if strings.EqualFold(part, ".git") {
			return fmt.Errorf("file %q: a path inside .git", p)
		}
	}
	return nil
}

// commit writes p's commit; the clone's lock held.
func (r *Repo) commit(repo *git.Repository, branch plumbing.ReferenceName, p Proposal, files *node) (Outcome, error) {
	baseTree, err := r.base.Tree()
	if err != nil {
		return Outcome{}, err
	}
	treeHash, err := write(repo, baseTree, files, "")
	if err != nil {
		return Outcome{}, err
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

// write stores tree (nil: a new directory) with n's files written into
// it, and returns the new tree's hash; dir names tree in errors.
func write(repo *git.Repository, tree *object.Tree, n *node, dir string) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if tree != nil {
		entries = slices.Clone(tree.Entries)
	}
	for _, name := range slices.Sorted(maps.Keys(n.kids)) {
		kid, where := n.kids[name], path.Join(dir, name)
		i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == name })
		var h plumbing.Hash
		var err error
		if kid.leaf {
			if i >= 0 && (!entries[i].Mode.IsFile() || entries[i].Mode == filemode.Symlink) {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a regular file", where)
			}
			h, err = store(repo, plumbing.BlobObject, kid.content)
		} else {
			var sub *object.Tree
			if i >= 0 {
				if entries[i].Mode != filemode.Dir {
					return plumbing.ZeroHash, fmt.Errorf("%s is not a directory", where)
				}
				if sub, err = repo.TreeObject(entries[i].Hash); err != nil {
					return plumbing.ZeroHash, fmt.Errorf("%s: %w", where, err)
				}
			}
			h, err = write(repo, sub, kid, where)
		}
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if i >= 0 {
			entries[i].Hash = h
			continue
		}
		mode := filemode.Regular
		if !kid.leaf {
			mode = filemode.Dir
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: mode, Hash: h})
	}
	// Git's order: by name, a directory's as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
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
