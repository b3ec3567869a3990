// Package statuspage renders the operators' HTML status page at GET /:
// one server-rendered document from templates embedded in the binary,
// no script, nothing fetched from anywhere (its Content-Security-Policy
// forbids it). Its input is Data, plain values the daemon fills: this
// package knows nothing of the reconciler or the updater, and of the
// timeline only its record of unmatched clients' shape.
package statuspage

import (
	"time"

	"github.com/pxeops/pxeops/serve/timeline"
)

// Data is everything the page shows. Zero values read as "none" or
// "never"; slices may be longer than the page's bounds (Max*), which
// then says how many it left out and where the whole list is.
type Data struct {
	// Now is when the page is rendered: every "12s ago" counts from it.
	Now       time.Time `json:"now"`
	Version   string    `json:"version"`
	ServerURL string    `json:"server_url"`
	Access    string    `json:"access,omitempty"`
	// Down is the component that stopped, and why: the daemon is
	// shutting down.
	Down   string  `json:"down,omitempty"`
	Source Source  `json:"source"`
	Served *Served `json:"served,omitempty"` // nil: nothing served yet
	// Loading is the revision being loaded now, if any.
	Loading    *Loading    `json:"loading,omitempty"`
	LastReload *Reload     `json:"last_reload,omitempty"` // nil: none yet
	Machines   []Machine   `json:"machines,omitempty"`
	Unmatched  []Unmatched `json:"unmatched,omitempty"`
	Omaha      Omaha       `json:"omaha"`
}

// Source is where the served trees come from.
type Source struct {
	Kind      string `json:"kind"`
	Location  string `json:"location"` // redacted by the source
	LastScan  string `json:"last_scan,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Served is the revision being served.
type Served struct {
	Revision string    `json:"revision"`
	Digest   string    `json:"digest,omitempty"`
	Since    time.Time `json:"since"`
	Profiles int       `json:"profiles"`
	Groups   int       `json:"groups"`
	Images   int       `json:"images"`
	Warnings int       `json:"warnings"`
}

// Loading is a load under way.
type Loading struct {
	Revision string    `json:"revision"`
	Since    time.Time `json:"since"`
}

// Reload is the last revision tried, served or not.
type Reload struct {
	Revision string    `json:"revision"`
	At       time.Time `json:"at"`
	// OK is true when it was served; Result says what happened in the
	// reconciler's words (served, invalid, retrying, abandoned).
	OK          bool         `json:"ok"`
	Result      string       `json:"result"`
	Action      string       `json:"action,omitempty"`
	Errors      int          `json:"errors"`
	Warnings    int          `json:"warnings"`
	NextRetry   time.Time    `json:"next_retry,omitzero"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	Truncated   bool         `json:"truncated,omitempty"` // the reconciler kept only the first diagnostics
}

// Diagnostic is one finding about a tree, where a person fixes it.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Col      int    `json:"column,omitempty"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Machine is one machine of the boot timeline (GET /v1/machines' shape).
type Machine struct {
	MAC      string    `json:"mac"`
	Group    string    `json:"group,omitempty"`
	Profile  string    `json:"profile,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Stage    string    `json:"stage"`
	LastSeen time.Time `json:"last_seen"`
	// State is the machine's installed state, when it has one
	// ("installed"); empty shows nothing.
	State string `json:"state,omitempty"`
}

// Unmatched is a PXE client no group matched: the timeline's record,
// as GET /v1/discovered has it.
type Unmatched = timeline.Discovered

// Omaha is the image updater's and the Omaha responder's state.
type Omaha struct {
	// Updater is "on", or "off: <why>".
	Updater string  `json:"updater"`
	Error   string  `json:"error,omitempty"`
	Images  []Image `json:"images,omitempty"`
	Census  Census  `json:"census"`
}

// Image is one image the updater follows.
type Image struct {
	ID        string    `json:"id"`
	Current   string    `json:"current"`
	Latest    string    `json:"latest,omitempty"`
	State     string    `json:"state"`
	Stage     string    `json:"stage,omitempty"` // where it failed
	Error     string    `json:"error,omitempty"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Branch    string    `json:"branch,omitempty"`
}

// Census counts the hosts that asked the Omaha responder.
type Census struct {
	Hosts    int       `json:"hosts"`
	Versions []Version `json:"versions,omitempty"`
	Recent   []Host    `json:"recent,omitempty"` // most recently seen first
}

// Version is how many hosts run one version on one channel.
type Version struct {
	Channel string `json:"channel"`
	Version string `json:"version"`
	Hosts   int    `json:"hosts"`
}

// Host is one host of the census.
type Host struct {
	MachineID   string    `json:"machine_id"`
	Version     string    `json:"version"`
	Channel     string    `json:"channel"`
	Board       string    `json:"board,omitempty"`
	Addr        string    `json:"addr"`
	LastContact time.Time `json:"last_contact"`
	LastEvent   string    `json:"last_event,omitempty"`
}
