// Package timeline records every step of a machine through pxeops, per
// MAC: ProxyDHCP offers, the boot server's answer, TFTP transfers, the
// boot scripts and configs served, kernel and initrd downloads and Omaha
// check-ins; and the PXE clients no group matches (discovery's input).
//
// Memory is bounded (events per machine, machines, unmatched clients,
// learned addresses; the oldest go first) and the hot paths take one
// short lock of one shard out of 64 and allocate nothing in steady
// state: events keep strings that exist already (names from the served
// snapshot, the file names of requests). Recording never waits on I/O.
package timeline

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/render"
)

// Defaults of Options.
const (
	DefaultEvents    = 32
	DefaultMachines  = 10000
	DefaultUnmatched = 4096
	DefaultPairs     = 1000
)

// shards is how many locks the machines (and the learned addresses) are
// spread over; fewer when the caps are small, so that eviction is exact
// where it can be observed.
const shards = 64

// Options bound the recorder; zero values take the defaults.
type Options struct {
	Events    int // per machine; default 32
	Machines  int // default 10,000; past it the machine seen longest ago in its shard goes
	Unmatched int // unmatched clients kept; default 4,096
	// Addresses bounds the learned IP → MAC map; default twice Machines.
	Addresses int
	// Pairs bounds the group/profile pairs pxeops_boots_total counts
	// apart; later pairs are counted as group="other", profile="other".
	// Default 1,000.
	Pairs int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Registerer gets pxeops_boots_total and
	// pxeops_timeline_unattributed_total; nil: not registered.
	Registerer prometheus.Registerer
}

// Event is one step of a machine. Empty fields are omitted in JSON.
type Event struct {
	At       time.Time  `json:"at"`
	Stage    Stage      `json:"stage"`
	File     string     `json:"file,omitempty"`
	Bytes    int64      `json:"bytes,omitempty"`
	Outcome  string     `json:"outcome,omitempty"` // complete, aborted, error: …
	Group    string     `json:"group,omitempty"`
	Profile  string     `json:"profile,omitempty"`
	Revision string     `json:"revision,omitempty"`
	Remote   netip.Addr `json:"remote,omitzero"`
	Version  string     `json:"version,omitempty"` // Omaha
	// ImageVersion is the image version a boot answer served: the
	// rollout's on a machine on its side.
	ImageVersion string `json:"image_version,omitempty"`
}

// Outcomes of transfers and downloads.
const (
	OutcomeComplete = "complete"
	OutcomeAborted  = "aborted"
)

// Recorder keeps the timeline. Its methods are safe for concurrent use.
type Recorder struct {
	now      func() time.Time
	events   int
	machines []machineShard
	n        atomic.Int64 // machines kept
	max      int64
	addrs    []addrShard
	unmatch  unmatched
	counters *counters
	dropped  prometheus.Counter
}

type machineShard struct {
	mu     sync.Mutex
	byMAC  map[MAC]*machine
	newest *machine // LRU list by last event, newest first
	oldest *machine
	_      [64]byte // keeps shards' locks off one cache line
}

// machine is one MAC's ring of events and what it was last served.
type machine struct {
	mac       MAC
	ring      []Event // len Options.Events, allocated once per machine
	next, n   int
	last      time.Time
	moved     time.Time // last put at the newest end of the shard's list
	newer     *machine
	older     *machine
	group     *render.Group     // the last boot answer's
	files     *render.BootFiles // the version of group's profile it served
	revision  string
	stages    *stageCounters
	lastStage Stage
}

// New makes a recorder.
func New(opts Options) *Recorder {
	opts.Events = cmp.Or(opts.Events, DefaultEvents)
	opts.Machines = cmp.Or(opts.Machines, DefaultMachines)
	opts.Unmatched = cmp.Or(opts.Unmatched, DefaultUnmatched)
	opts.Addresses = cmp.Or(opts.Addresses, 2*opts.Machines)
	opts.Pairs = cmp.Or(opts.Pairs, DefaultPairs)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{now: opts.Now, events: opts.Events, max: int64(opts.Machines)}
	r.machines = make([]machineShard, shardsFor(opts.Machines))
	for i := range r.machines {
		r.machines[i] = machineShard{byMAC: map[MAC]*machine{}}
	}
	r.addrs = make([]addrShard, shardsFor(opts.Addresses))
	for i := range r.addrs {
		r.addrs[i] = addrShard{byAddr: map[addrKey]MAC{}, order: make([]addrKey, share(opts.Addresses, len(r.addrs), i))}
	}
	r.unmatch = unmatched{byMAC: map[MAC]*client{}, max: opts.Unmatched}
	r.counters = newCounters(opts.Pairs, opts.Registerer)
	r.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pxeops_timeline_unattributed_total",
		Help: "Events from an address no DHCP or boot request has tied to a MAC yet (TFTP, /assets, /boot.ipxe, Omaha): counted, not recorded.",
	})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.dropped)
	}
	return r
}

func shardsFor(n int) int {
	if n < 64*shards {
		return 1
	}
	return shards
}

// share is shard i's part of total over n shards; the parts add up to total.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return max(s, 1)
}

// record appends e to mac's timeline. g, when set, is the group of a
// boot answer and files what it served: the machine's new attribution
// for later events.
func (r *Recorder) record(mac MAC, e Event, g *render.Group, files *render.BootFiles, revision string) {
	sh := &r.machines[mac.shard(len(r.machines))]
	sh.mu.Lock()
	m := sh.byMAC[mac]
	switch {
	case m == nil:
		m = r.add(sh, mac)
		sh.pushNewest(m)
		m.moved = e.At
	case e.At.Sub(m.moved) >= reorderEvery:
		sh.unlink(m)
		sh.pushNewest(m)
		m.moved = e.At
	}
	if e.Stage == StageUnmatched { // served nothing: counted under no group
		m.group, m.files, m.revision, m.stages = nil, nil, "", r.counters.none
	}
	if g != nil {
		if g != m.group {
			m.stages = r.counters.of(g.ID, g.Profile.ID)
		}
		m.group, m.files, m.revision = g, files, revision
	}
	if m.files != nil && e.Stage == StageAsset {
		e.Stage = assetStage(m.files, e.File)
	}
	if m.group != nil && e.Group == "" {
		e.Group, e.Profile = m.group.ID, m.group.Profile.ID
		if e.Revision == "" {
			e.Revision = m.revision
		}
	}
	if m.stages == nil {
		m.stages = r.counters.none
	}
	m.ring[m.next] = e
	m.next = (m.next + 1) % len(m.ring)
	m.n = min(m.n+1, len(m.ring))
	m.last, m.lastStage = e.At, e.Stage
	stages := m.stages
	sh.mu.Unlock()
	stages.inc(r.counters, e.Stage)
}

// reorderEvery is how stale a machine's place in its shard's list may
// get: moving it on every event touched its two neighbours, two cache
// misses per DHCP packet in a fleet, for an order eviction needs only
// to the second.
const reorderEvery = time.Second

// add enters a machine in sh, making room when the recorder is full:
// the machine seen longest ago in sh goes and lends its ring. The count
// is the recorder's, not the shard's, because MACs do not spread evenly:
// a fleet the size of the cap would otherwise evict, from its fullest
// shards, machines it still boots, on every event.
func (r *Recorder) add(sh *machineShard, mac MAC) *machine {
	var m *machine
	if full := !r.reserve(); full && sh.oldest != nil {
		m = sh.oldest
		sh.unlink(m)
		delete(sh.byMAC, m.mac)
		ring := m.ring
		clear(ring)
		*m = machine{ring: ring}
	} else {
		if full {
			r.n.Add(1)
		}
		m = &machine{ring: make([]Event, r.events)}
	}
	m.mac = mac
	sh.byMAC[mac] = m
	return m
}

// reserve counts one more machine unless the recorder is full. A shard
// with none to evict takes one anyway: at most one per shard over.
func (r *Recorder) reserve() bool {
	for {
		n := r.n.Load()
		if n >= r.max {
			return false
		}
		if r.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (sh *machineShard) unlink(m *machine) {
	if m.newer != nil {
		m.newer.older = m.older
	} else {
		sh.newest = m.older
	}
	if m.older != nil {
		m.older.newer = m.newer
	} else {
		sh.oldest = m.newer
	}
	m.newer, m.older = nil, nil
}

func (sh *machineShard) pushNewest(m *machine) {
	m.older = sh.newest
	if sh.newest != nil {
		sh.newest.newer = m
	}
	sh.newest = m
	if sh.oldest == nil {
		sh.oldest = m
	}
}

// byAddr records e for the machine last seen at remote; an address
// never learned is counted and dropped.
func (r *Recorder) byAddr(remote netip.Addr, e Event) {
	mac, ok := r.macAt(remote)
	if !ok {
		r.dropped.Inc()
		return
	}
	e.Remote = remote
	r.record(mac, e, nil, nil, "")
}

// DHCP records a ProxyDHCP answer (StageOffer) or a boot server answer
// (StageBootServer) with its boot file. addr, when valid, is the address
// the client asked for (option 50) or has (ciaddr): learned for the
// requests that carry no MAC.
func (r *Recorder) DHCP(mac MAC, stage Stage, addr netip.Addr, file string) {
	if addr.IsValid() && !addr.IsUnspecified() {
		r.learn(addr, mac)
	}
	r.record(mac, Event{At: r.now(), Stage: stage, File: file, Remote: addr}, nil, nil, "")
}

// Boot records a boot answer of the HTTP server (endpoint as httpserver
// names it: ipxe, grub, config, metadata…) for the machine mac (render's
// normalized form) at remote, from snap's group g. remote is learned.
func (r *Recorder) Boot(mac string, remote netip.Addr, endpoint string, snap *render.Snapshot, g *render.Group) {
	stage, ok := stageOfEndpoint(endpoint)
	m, okm := ParseMAC(mac)
	if !ok || !okm || g == nil || snap == nil {
		return
	}
	if remote.IsValid() {
		r.learn(remote, m)
	}
	files := g.Profile.Boot(mac) // the rollout's files on a machine on its side
	r.record(m, Event{At: r.now(), Stage: stage, Group: g.ID, Profile: g.Profile.ID, Revision: snap.Revision, Remote: remote, ImageVersion: files.Version}, g, files, snap.Revision)
}

// BootIPXE records a GET /boot.ipxe, which carries no MAC.
func (r *Recorder) BootIPXE(remote netip.Addr) {
	r.byAddr(remote, Event{At: r.now(), Stage: StageBootIPXE})
}

// TFTP records a transfer's end: the file asked for, the bytes sent and
// its outcome.
func (r *Recorder) TFTP(remote netip.Addr, file string, bytes int64, outcome string) {
	r.byAddr(remote, Event{At: r.now(), Stage: StageTFTP, File: file, Bytes: bytes, Outcome: outcome})
}

// Omaha records an update_engine check-in with the version it runs.
func (r *Recorder) Omaha(remote netip.Addr, version string) {
	r.byAddr(remote, Event{At: r.now(), Stage: StageOmaha, Version: version})
}

// Installed records the installer's report (StageInstalled).
func (r *Recorder) Installed(mac string, remote netip.Addr) {
	if m, ok := ParseMAC(mac); ok {
		r.record(m, Event{At: r.now(), Stage: StageInstalled, Remote: remote}, nil, nil, "")
	}
}

// Asset records a download from /assets/ (path as requested, e.g.
// /assets/fcos/kernel): the kernel or an initrd of the profile last
// served to the machine at remote, or another asset.
func (r *Recorder) Asset(remote netip.Addr, path string, bytes int64, complete bool) {
	mac, ok := r.macAt(remote)
	if !ok {
		r.dropped.Inc()
		return
	}
	e := Event{At: r.now(), Stage: StageAsset, File: path, Bytes: bytes, Outcome: OutcomeAborted, Remote: remote}
	if complete {
		e.Outcome = OutcomeComplete
	}
	r.record(mac, e, nil, nil, "") // classified there, against the machine's profile
}

// assetStage compares a requested path with the kernel and initrd URLs
// served to the machine (absolute: the server's URL and the path).
func assetStage(p *render.BootFiles, path string) Stage {
	if p == nil || path == "" {
		return StageAsset
	}
	if urlPathIs(p.Kernel, path) {
		return StageKernel
	}
	for _, in := range p.Initrds {
		if urlPathIs(in.URL, path) {
			return StageInitrd
		}
	}
	return StageAsset
}

// urlPathIs reports whether url is scheme://host followed by path.
func urlPathIs(url, path string) bool {
	rest, ok := strings.CutSuffix(url, path)
	if !ok {
		return false
	}
	i := strings.Index(rest, "://")
	return i >= 0 && !strings.Contains(rest[i+3:], "/")
}

// Machine is one machine's summary; Events only in Recorder.Machine.
type Machine struct {
	MAC      string `json:"mac"`
	Group    string `json:"group"`
	Profile  string `json:"profile"`
	Revision string `json:"revision"`
	// ImageVersion is the image version last served; Rollout says it
	// is the image's rollout's.
	ImageVersion string    `json:"image_version,omitempty"`
	Rollout      bool      `json:"rollout,omitempty"`
	Stage        Stage     `json:"stage"`
	LastSeen     time.Time `json:"last_seen"`
	AgoSeconds   float64   `json:"ago_seconds"`
	// State is the durable machine state, filled by whoever keeps it.
	State  any     `json:"state,omitempty"`
	Events []Event `json:"events,omitempty"`
}

func (m *machine) summary(now time.Time) Machine {
	s := Machine{MAC: m.mac.String(), Revision: m.revision, Stage: m.lastStage, LastSeen: m.last,
		AgoSeconds: float64(now.Sub(m.last).Round(100*time.Millisecond)) / float64(time.Second)}
	if m.group != nil {
		s.Group, s.Profile = m.group.ID, m.group.Profile.ID
	}
	if m.files != nil {
		s.ImageVersion, s.Rollout = m.files.Version, m.files.OnRollout
	}
	return s
}

// Machines is every machine recorded, the one seen last first.
func (r *Recorder) Machines() []Machine {
	now := r.now()
	var out []Machine
	for i := range r.machines {
		sh := &r.machines[i]
		sh.mu.Lock()
		for m := sh.newest; m != nil; m = m.older {
			out = append(out, m.summary(now))
		}
		sh.mu.Unlock()
	}
	slices.SortStableFunc(out, func(a, b Machine) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

// Machine is one machine's summary with its events, oldest first; mac
// is in render.ParseMAC's form.
func (r *Recorder) Machine(mac string) (Machine, bool) {
	key, ok := ParseMAC(mac)
	if !ok {
		return Machine{}, false
	}
	now := r.now()
	sh := &r.machines[key.shard(len(r.machines))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.byMAC[key]
	if m == nil {
		return Machine{}, false
	}
	s := m.summary(now)
	s.Events = make([]Event, 0, m.n)
	start := (m.next - m.n + len(m.ring)) % len(m.ring)
	for i := range m.n {
		s.Events = append(s.Events, m.ring[(start+i)%len(m.ring)])
	}
	return s, true
}

// addrShard maps addresses to the MAC last seen at them; order is a
// ring of the addresses in the order they were first learned, so the
// oldest goes when the shard is full.
type addrShard struct {
	mu     sync.Mutex
	byAddr map[addrKey]MAC
	order  []addrKey
	next   int
	_      [64]byte
}

// addrKey is an address as 16 bytes. netip.Addr holds a pointer (its
// zone), which would make the garbage collector scan these maps and
// rings on every cycle: with 20,000 addresses that showed on the DHCP
// benchmark. The zero key is the unspecified address, never learned.
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.Unmap().As16() }

func addrShardOf(k addrKey, n int) int {
	h := uint64(k[12])<<24 | uint64(k[13])<<16 | uint64(k[14])<<8 | uint64(k[15]) | uint64(k[11])<<32 | uint64(k[10])<<40
	h *= 0x9E3779B97F4A7C15
	return int(h>>32) % n
}

func (r *Recorder) learn(a netip.Addr, mac MAC) {
	k := keyOf(a)
	if k == (addrKey{}) {
		return
	}
	sh := &r.addrs[addrShardOf(k, len(r.addrs))]
	sh.mu.Lock()
	if old, ok := sh.byAddr[k]; ok {
		if old != mac {
			sh.byAddr[k] = mac
		}
		sh.mu.Unlock()
		return
	}
	if evict := sh.order[sh.next]; evict != (addrKey{}) {
		delete(sh.byAddr, evict)
	}
	sh.order[sh.next] = k
	sh.next = (sh.next + 1) % len(sh.order)
	sh.byAddr[k] = mac
	sh.mu.Unlock()
}

func (r *Recorder) macAt(a netip.Addr) (MAC, bool) {
	if !a.IsValid() {
		return MAC{}, false
	}
	k := keyOf(a)
	sh := &r.addrs[addrShardOf(k, len(r.addrs))]
	sh.mu.Lock()
	mac, ok := sh.byAddr[k]
	sh.mu.Unlock()
	return mac, ok
}

// counters are pxeops_boots_total's series, looked up once per
// group/profile pair and stage and then kept beside the machine.
type counters struct {
	vec   *prometheus.CounterVec
	mu    sync.Mutex
	pairs map[[2]string]*stageCounters
	max   int
	none  *stageCounters // group="" profile="": nothing served yet, unmatched
	other *stageCounters
}

type stageCounters struct {
	group, profile string
	c              [numStages]atomic.Pointer[counterBox]
}

type counterBox struct{ prometheus.Counter }

func newCounters(maxPairs int, reg prometheus.Registerer) *counters {
	c := &counters{pairs: map[[2]string]*stageCounters{}, max: maxPairs,
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_boots_total",
			Help: "Steps of machines through pxeops, by the group and profile last served to them (\"\" before any, \"other\" past the cap on pairs) and stage.",
		}, []string{"group", "profile", "stage"})}
	c.none = &stageCounters{}
	c.other = &stageCounters{group: "other", profile: "other"}
	if reg != nil {
		reg.MustRegister(c.vec)
	}
	return c
}

func (c *counters) of(group, profile string) *stageCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{group, profile}
	if sc, ok := c.pairs[key]; ok {
		return sc
	}
	if len(c.pairs) >= c.max {
		return c.other
	}
	sc := &stageCounters{group: group, profile: profile}
	c.pairs[key] = sc
	return sc
}

func (sc *stageCounters) inc(c *counters, s Stage) {
	b := sc.c[s].Load()
	if b == nil {
		b = &counterBox{c.vec.WithLabelValues(sc.group, sc.profile, s.String())}
		if !sc.c[s].CompareAndSwap(nil, b) {
			b = sc.c[s].Load()
		}
	}
	b.Inc()
}
