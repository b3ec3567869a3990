package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/schema"
)

// Limits of a directory walk, so a wrong --source (say, /) fails fast
// instead of stat-ing a whole disk.
const (
	maxEntries = 500_000
	maxDepth   = 16
)

// DirOptions configure a directory source.
type DirOptions struct {
	// Poll is the period of the full rescan that converges even when no
	// event arrives (NFS, FUSE, many container bind mounts).
	Poll time.Duration
	// Debounce is how long a burst of events must be quiet before the
	// tree is rescanned, so an editor's or git's many writes give one reload.
	Debounce time.Duration
	// Watch turns fsnotify on; without it only the rescan sees changes.
	Watch  bool
	Logger *slog.Logger
}

// Dir is a directory source: fsnotify on every directory of the tree plus
// a periodic rescan. A revision's ID is a fingerprint of every file's
// path, size, mtime, inode and mode, symlinks followed, so the rename of
// an editor's save and the ..data swap of a Kubernetes ConfigMap both
// change it; a rescan that finds the same fingerprint emits nothing.
type Dir struct {
	path string
	root *os.Root
	opts DirOptions
	log  *slog.Logger

	files   map[string]*memFile // the previous scan's, reused where stat says unchanged; Run's goroutine only
	trigger chan struct{}
	// scanner reads one revision: scan, or scanSecrets for a
	// secrets directory, which shares this watch-and-rescan loop.
	scanner func(w *fsnotify.Watcher) (Revision, error)
	key     []byte // a secrets directory's fingerprint key, random per process

	mu    sync.Mutex
	state State
}

// NewDir opens the directory at path. It fails when path is not a
// readable directory.
func NewDir(dir string, opts DirOptions) (*Dir, error) {
	root, err := safefile.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", dir, err)
	}
	if opts.Poll <= 0 {
		opts.Poll = 30 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dir{path: dir, root: root, opts: opts, log: opts.Logger.With("source", dir), trigger: make(chan struct{}, 1)}
	d.state = State{Kind: "dir", Location: dir}
	d.scanner = d.scan
	return d, nil
}

// State reports the source's health for /status.
func (d *Dir) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Trigger asks Run to rescan now (SIGHUP); calls while one is pending
// fold into it.
func (d *Dir) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Once scans the tree once, without watching: what check and render
// load, so they read a directory exactly as serve does. Not to be called
// while Run runs.
func (d *Dir) Once() (Revision, error) { return d.scanner(nil) }

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Run emits the current tree, then every changed tree, until ctx ends.
// emit is called from Run's goroutine, one revision at a time.
func (d *Dir) Run(ctx context.Context, emit func(Revision)) error {
	var w *fsnotify.Watcher
	var events <-chan fsnotify.Event
	var errs <-chan error
	if d.opts.Watch {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			d.log.Warn("fsnotify unavailable; relying on the periodic rescan", "err", err, "poll", d.opts.Poll)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	last := ""
	scan := func(reason string) {
		rev, err := d.scanner(w)
		d.mu.Lock()
		d.state.LastScan = time.Now().UTC().Format(time.RFC3339Nano)
		d.state.LastError = ""
		if err != nil {
			d.state.LastError = err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			// Retried on the next event or rescan; the last good tree keeps serving.
			d.log.Warn("scan failed; will retry", "reason", reason, "err", err)
			return
		}
		if rev.ID != last {
			last = rev.ID
			d.log.Debug("tree changed", "reason", reason, "revision", rev.ID)
			emit(rev)
		}
	}
	scan("start")

	ticker := time.NewTicker(d.opts.Poll)
	defer ticker.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			scan("rescan")
		case <-d.trigger:
			scan("trigger")
		case <-debounce.C:
			scan("event")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			d.log.Debug("fs event", "event", ev.String())
			debounce.Reset(d.opts.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// On overflow events were lost: only a full rescan knows the truth.
			d.log.Warn("fsnotify error; rescanning", "err", err)
			debounce.Reset(0)
		}
	}
}

// scan walks the tree once: it fingerprints every entry (path, mode,
// size, mtime, inode), snapshots the files the schema reads, reading only
// those whose stat changed since the last scan, and, with a watcher,
// adds a watch on every directory (a no-op for watched ones, so
// directories that appeared since get theirs).
func (d *Dir) scan(w *fsnotify.Watcher) (Revision, error) {
	h := sha256.New()
	var buf [8]byte
	num := func(v uint64) { binary.LittleEndian.PutUint64(buf[:], v); h.Write(buf[:]) }
	watched := 0
	watch := func(rel string) {
		if w != nil && w.Add(filepath.Join(d.path, rel)) == nil {
			watched++
		}
	}
	watch(".")
	tree := &treeFS{files: map[string]*memFile{}, dirs: map[string][]fs.DirEntry{}, disk: safefile.FS(d.root)}
	err := d.walk(func(rel string, info fs.FileInfo) error {
		if info.IsDir() {
			watch(rel)
		}
		key := statKey{size: info.Size(), mtime: info.ModTime().UnixNano()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			key.ino, key.dev = st.Ino, st.Dev
		}
		h.Write([]byte(rel))
		h.Write([]byte{0})
		num(uint64(info.Mode()))
		num(uint64(key.size))
		num(uint64(key.mtime))
		num(key.ino)
		num(key.dev)
		if !schema.InTree(rel) || info.IsDir() {
			tree.add(rel, info, nil)
			return nil
		}
		// A named pipe, device or socket is never opened: the load
		// reports it at its file, like any other bad file of the tree.
		f := d.files[rel]
		if err := safefile.CheckMode(rel, info.Mode()); err != nil {
			f = &memFile{info: info, key: key, err: err}
		} else if f == nil || f.key != key {
			data, err := d.read(rel)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil // removed since it was listed: the next scan sees the rest
			case errors.Is(err, safefile.ErrNotRegular):
				f = &memFile{info: info, key: key, err: err} // replaced since it was stat-ed
			case err != nil:
				return err
			default:
				f = &memFile{info: info, key: key, data: data}
			}
		}
		tree.add(rel, info, f)
		return nil
	})
	d.mu.Lock()
	d.state.Watching, d.state.Watched = w != nil, watched
	d.mu.Unlock()
	if err != nil {
		return Revision{}, err
	}
	d.files = tree.files
	return Revision{ID: "dir:" + hex.EncodeToString(h.Sum(nil))[:16], FS: tree}, nil
}

// read reads a regular file of the tree, at most one byte more than the
// schema accepts, so an oversized file is reported, not held.
func (d *Dir) read(rel string) ([]byte, error) {
	f, err := safefile.OpenIn(d.root, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, schema.MaxFileSize+1))
}

// walk visits every non-hidden entry below the root, following symlinks
// (inside the root only: os.Root refuses the others), in name order.
func (d *Dir) walk(visit func(rel string, info fs.FileInfo) error) error {
	count := 0
	var walkDir func(rel string, depth int) error
	walkDir = func(rel string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("%s: deeper than %d levels; point --source at the config repository", rel, maxDepth)
		}
		entries, err := fs.ReadDir(safefile.FS(d.root), rel)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if count++; count > maxEntries {
				return fmt.Errorf("more than %d entries; point --source at the config repository", maxEntries)
			}
			p := path.Join(rel, e.Name())
			info, err := d.root.Stat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while walking, or a dangling symlink: the next scan sees the rest
			}
			if err != nil {
				return err
			}
			if err := visit(p, info); err != nil {
				return err
			}
			if info.IsDir() {
				if err := walkDir(p, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walkDir(".", 0)
}
