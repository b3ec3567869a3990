package timeline

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Discovered is a PXE client no group matched: discovery's input, served
// at GET /v1/discovered. UUID, Arch and Relay are omitted when unknown;
// Seen counts its requests.
type Discovered struct {
	MAC         string    `json:"mac"`
	UUID        string    `json:"uuid,omitempty"`
	Arch        string    `json:"arch,omitempty"`
	VendorClass string    `json:"vendor_class"`
	Relay       string    `json:"relay,omitempty"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	Seen        int       `json:"seen"`
}

// Client is what a refused request tells of the client: MAC, UUID
// (option 97 or the query's), architecture (option 93 as the snapshot
// names it, or the query's), vendor class (option 60) and the relay
// (giaddr). Empty fields are unknown.
type Client struct {
	MAC         MAC
	UUID        string
	Arch        string
	VendorClass string
	Relay       netip.Addr
}

type unmatched struct {
	mu     sync.Mutex
	byMAC  map[MAC]*client
	newest *client // by last seen, newest first
	oldest *client
	max    int
}

type client struct {
	Client
	first, last  time.Time
	seen         int
	newer, older *client
}

// Unmatched records a client no group of the served snapshot could
// match, both among the discovered and as a StageUnmatched event of its
// timeline. What it tells replaces what was known only where it is set.
func (r *Recorder) Unmatched(c Client) {
	now := r.now()
	u := &r.unmatch
	u.mu.Lock()
	cl := u.byMAC[c.MAC]
	switch {
	case cl != nil:
		u.unlink(cl)
	case len(u.byMAC) >= u.max && u.oldest != nil:
		cl = u.oldest
		u.unlink(cl)
		delete(u.byMAC, cl.MAC)
		*cl = client{}
	default:
		cl = &client{}
	}
	if cl.seen == 0 {
		cl.Client, cl.first = c, now
		u.byMAC[c.MAC] = cl
	} else {
		cl.UUID = cmp.Or(c.UUID, cl.UUID)
		cl.Arch = cmp.Or(c.Arch, cl.Arch)
		cl.VendorClass = cmp.Or(c.VendorClass, cl.VendorClass)
		if c.Relay.IsValid() {
			cl.Relay = c.Relay
		}
	}
	cl.last = now
	cl.seen++
	u.pushNewest(cl)
	u.mu.Unlock()
	r.record(c.MAC, Event{At: now, Stage: StageUnmatched, Remote: c.Relay}, nil, nil, "")
}

func (u *unmatched) unlink(c *client) {
	if c.newer != nil {
		c.newer.older = c.older
	} else {
		u.newest = c.older
	}
	if c.older != nil {
		c.older.newer = c.newer
	} else {
		u.oldest = c.newer
	}
	c.newer, c.older = nil, nil
}

func (u *unmatched) pushNewest(c *client) {
	c.older = u.newest
	if u.newest != nil {
		u.newest.newer = c
	}
	u.newest = c
	if u.oldest == nil {
		u.oldest = c
	}
}

// Discovered is every unmatched client kept, by MAC.
func (r *Recorder) Discovered() []Discovered {
	u := &r.unmatch
	u.mu.Lock()
	out := make([]Discovered, 0, len(u.byMAC))
	for c := u.newest; c != nil; c = c.older {
		d := Discovered{MAC: c.MAC.String(), UUID: c.UUID, Arch: c.Arch, VendorClass: c.VendorClass,
			FirstSeen: c.first, LastSeen: c.last, Seen: c.seen}
		if c.Relay.IsValid() && !c.Relay.IsUnspecified() {
			d.Relay = c.Relay.String()
		}
		out = append(out, d)
	}
	u.mu.Unlock()
	slices.SortFunc(out, func(a, b Discovered) int { return cmp.Compare(a.MAC, b.MAC) })
	return out
}
