package source

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/schema"
)

// kubeData is the link a mounted Kubernetes Secret (or ConfigMap) points
// at its current timestamped directory; the kubelet swaps it atomically.
const kubeData = "..data"

// NewSecretsDir opens a secrets directory: one file per secret, the file
// name the secret's name, the file's bytes its value exactly (no newline
// is trimmed). A mounted Kubernetes Secret and a Vault agent's output
// directory both have this shape. Hidden entries are skipped; anything
// else that is not a regular file of a valid name fails the scan, and
// the last good set keeps serving. It is only ever read.
//
// Its revisions carry the set as Revision.Secrets, and an ID that is an
// HMAC of the names and values under a key drawn at random here: equal
// sets give equal IDs within this process, and an ID tells nothing about
// a value. It is watched and rescanned as a tree directory is.
func NewSecretsDir(dir string, opts DirOptions) (*Dir, error) {
	d, err := NewDir(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	d.log = d.opts.Logger.With("secrets", dir)
	d.state = State{Kind: "secrets", Location: dir}
	d.key = make([]byte, 32)
	rand.Read(d.key)
	d.scanner = d.scanSecrets
	return d, nil
}

// scanSecrets reads the set. Under the Kubernetes layout every value is
// read from the directory ..data points at, and the scan is repeated if
// ..data moved meanwhile, so a set is never half old and half new.
func (d *Dir) scanSecrets(w *fsnotify.Watcher) (Revision, error) {
	watched := 0
	if w != nil && w.Add(d.path) == nil {
		watched = 1
	}
	d.mu.Lock()
	d.state.Watching, d.state.Watched = w != nil, watched
	d.mu.Unlock()
	for range 3 {
		set, stable, err := d.readSecrets()
		if err != nil {
			return Revision{}, err
		}
		if stable {
			return Revision{ID: "secrets:" + set.Fingerprint(d.key), Secrets: set}, nil
		}
	}
	return Revision{}, errors.New("the secrets kept changing while read (..data moved three times); retrying")
}

func (d *Dir) readSecrets() (set *schema.Secrets, stable bool, err error) {
	base, err := d.dataDir()
	if err != nil {
		return nil, false, err
	}
	entries, err := fs.ReadDir(safefile.FS(d.root), ".")
	if err != nil {
		return nil, false, err
	}
	values := map[string][]byte{}
	total := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if err := schema.CheckSecretName(name); err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
		if len(values) == schema.MaxSecrets {
			return nil, false, fmt.Errorf("more than %d secrets", schema.MaxSecrets)
		}
		v, err := safefile.ReadFileIn(d.root, path.Join(base, name), schema.MaxSecretSize)
		switch {
		case errors.Is(err, fs.ErrNotExist) && base != ".":
			return nil, false, nil // ..data moved away under us: read again
		case errors.Is(err, fs.ErrNotExist):
			continue // removed while listed, or a dangling link: the next scan sees the rest
		case err != nil:
			return nil, false, unwrapPathName(name, err)
		}
		if total += len(v); total > schema.MaxSecretsTotal {
			return nil, false, fmt.Errorf("the secrets total more than %d bytes", schema.MaxSecretsTotal)
		}
		values[name] = v
	}
	if again, err := d.dataDir(); err != nil || again != base {
		return nil, false, nil
	}
	set, err = schema.NewSecrets("the secrets directory "+d.path, values)
	return set, err == nil, err
}

// dataDir is where the values are: the target of ..data when the
// directory is a mounted Kubernetes Secret, else the directory itself.
func (d *Dir) dataDir() (string, error) {
	target, err := d.root.Readlink(kubeData)
	if errors.Is(err, fs.ErrNotExist) {
		return ".", nil
	}
	if err != nil {
		// Not a link (EINVAL): not the Kubernetes layout.
		if info, serr := d.root.Lstat(kubeData); serr == nil && info.Mode()&fs.ModeSymlink == 0 {
			return ".", nil
		}
		return "", fmt.Errorf("%s: %w", kubeData, err)
	}
	if !fs.ValidPath(target) || strings.Contains(target, "/") {
		return "", fmt.Errorf("%s points at %q, not a directory beside it", kubeData, target)
	}
	return target, nil
}

// unwrapPathName names a secret's file by its name, not by the
// timestamped directory it was read from.
func unwrapPathName(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", name, pe.Err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Source is a tree or secrets source as the daemon runs it.
type Source interface {
	Run(ctx context.Context, emit func(Revision)) error
	State() State
	Trigger()
}

// WithSecrets pairs a tree source with a secrets directory: each
// revision is the tree's latest with the secrets' latest, ID
// "<tree id>+secrets:<fingerprint>", so a changed secret is a new
// revision like a new commit. Nothing is emitted until both have been
// read once. Trigger (SIGHUP, the webhook) rescans both.
func WithSecrets(tree Source, secrets *Dir) Source {
	return &withSecrets{tree: tree, secrets: secrets}
}

type withSecrets struct {
	tree    Source
	secrets *Dir
}

func (s *withSecrets) Trigger() {
	s.tree.Trigger()
	s.secrets.Trigger()
}

func (s *withSecrets) State() State {
	st := s.tree.State()
	sec := s.secrets.State()
	st.Secrets = &sec
	return st
}

// Run runs both sources until ctx ends or either stops.
func (s *withSecrets) Run(ctx context.Context, emit func(Revision)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var tree, sec *Revision
	pair := func(fromSecrets bool) func(Revision) {
		return func(r Revision) {
			mu.Lock()
			defer mu.Unlock()
			if fromSecrets {
				sec = &r
			} else {
				tree = &r
			}
			if tree != nil && sec != nil {
				emit(Revision{ID: tree.ID + "+" + sec.ID, FS: tree.FS, Secrets: sec.Secrets})
			}
		}
	}
	secDone := make(chan error, 1)
	go func() {
		err := s.secrets.Run(ctx, pair(true))
		cancel() // the secrets stopped: the tree must not go on alone
		secDone <- err
	}()
	err := s.tree.Run(ctx, pair(false))
	cancel()
	serr := <-secDone
	if err == nil && serr != nil {
		err = fmt.Errorf("secrets: %w", serr)
	}
	return err
}
