package schema

import (
	"crypto/sha256"
	"sync"
)

// Cache lets successive loads of a changing tree skip the work whose
// inputs did not change: decoding and checking a file whose content is
// the same, and running a group's templates when the group, its profile,
// image and config template are all the same. A load with a cache gives
// exactly what a load without one gives; only time differs. Entries not
// used by the latest load are dropped, so the cache holds one tree.
type Cache struct {
	mu    sync.Mutex // one load at a time
	files map[string]cachedFile
	runs  map[runKey][]finding
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

type cachedFile struct {
	sum   [sha256.Size]byte
	obj   any // as decoded and checked, before validate resolves references; never modified
	diags Diagnostics
}

// runKey names the inputs of one group's template run by content: the
// group, profile, image, config template and, when the config reads
// secrets, the secret set.
type runKey [5][sha256.Size]byte

// finding is one result of running a group's templates.
type finding struct {
	at   Pos
	msg  string
	bug  bool // a fault of the template itself, whatever the data
	warn bool // Butane's or Ignition's warning: reported, not refused
}

// lookup returns the cached object for file when its content is data's.
func (c *Cache) lookup(file string, sum [sha256.Size]byte) (cachedFile, bool) {
	if c == nil {
		return cachedFile{}, false
	}
	e, ok := c.files[file]
	return e, ok && e.sum == sum
}

func (c *Cache) run(k runKey) ([]finding, bool) {
	if c == nil {
		return nil, false
	}
	f, ok := c.runs[k]
	return f, ok
}
