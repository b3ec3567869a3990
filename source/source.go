// Package source is where config trees come from. A source watches its
// origin and hands each new state of the tree to a callback as a
// Revision; it never writes to the origin.
//
// It is also pxeops' one git layer: the bare clone and the lock every
// user of it holds (Clone, which the image updater shares with the git
// source of the same remote), auth, URL redaction, commit trees read into
// memory, path rules (CleanPath) and poll jitter.
package source

import (
	"io/fs"

	"github.com/pxeops/pxeops/schema"
)

// Revision is one state of a config tree.
type Revision struct {
	// ID names the state: equal IDs mean an equal tree, so a revision
	// that failed once is not retried until something changes.
	ID string
	// FS reads the tree.
	FS fs.FS
	// Secrets are what the tree's {{ secret }} read (WithSecrets); nil:
	// none. Never printed: the set says only how many it holds.
	Secrets *schema.Secrets
}

// State is what a source reports about itself for /status.
type State struct {
	Kind      string `json:"kind"`
	Location  string `json:"location"`
	Watching  bool   `json:"watching"`
	Watched   int    `json:"watched_dirs,omitempty"`
	LastScan  string `json:"last_scan,omitempty"`
	Checks    int    `json:"checks,omitempty"` // remote checks made (git)
	LastError string `json:"last_error,omitempty"`
	// Secrets is the secrets directory's own state (WithSecrets).
	Secrets *State `json:"secrets,omitempty"`
}
