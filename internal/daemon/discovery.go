package daemon

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/reconcile/discover"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/serve/timeline"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

// DiscoveryStatus is the discovery pass's part of /status.
type DiscoveryStatus struct {
	// State is "on", or "off: <why>".
	State string `json:"state"`
	// Branch is discovery.branch of the served tree.
	Branch string `json:"branch,omitempty"`
	// LastPass is when the last pass ran, whatever its outcome.
	LastPass *time.Time `json:"last_pass,omitempty"`
	// Proposed counts the machines the branch proposes after the last
	// pass that succeeded: new ones and those it held already.
	Proposed int `json:"proposed"`
	// Commit is the branch's commit after that pass ("" when there was
	// nothing to propose).
	Commit string `json:"commit,omitempty"`
	// Error is the last pass's error; "" once a pass succeeds again.
	Error string `json:"error,omitempty"`
}

// discoveryFirst is the wait before the first look at the settings, so
// the first snapshot has arrived (the updater waits as long).
const discoveryFirst = 10 * time.Second

// discoveryAuthor authors and commits proposals made inside serve, as
// pxeops discover's default --author does.
var discoveryAuthor = object.Signature{Name: "pxeops", Email: "pxeops@localhost"}

// discoverer runs discovery passes inside serve when the served tree sets
// discovery.serve: every discovery.interval (jittered), and only when the
// unmatched clients or the served revision changed since the last pass
// that succeeded. Failures are logged and kept for /status; serving never
// depends on them.
type discoverer struct {
	// open gives the repository of each pass, fetched anew: the updater's
	// (Config.OpenUpdateRepo), over the git source's own clone.
	open func(context.Context) (*propose.Repo, error)
	// off, when set, is why passes cannot run on this source whatever
	// the tree says.
	off      string
	snapshot func() *render.Snapshot
	boots    *timeline.Recorder
	log      *slog.Logger
	redact   source.Redactor
	// first and every override discoveryFirst and discovery.interval
	// (tests); 0: those.
	first, every time.Duration

	mu        sync.Mutex
	st        DiscoveryStatus
	loggedOff bool
}

// discoverer wires discovery to the source: it runs on a git source
// only. A directory source is never written to by pxeops (it may be
// read-only, or a person's checkout), so there passes do not run; the
// tree's settings are not known before it loads, so this cannot be
// refused at Validate: it is logged once the tree asks for it and shown
// in /status.
func (c *Config) discoverer(snapshot func() *render.Snapshot, boots *timeline.Recorder, log *slog.Logger) *discoverer {
	d := &discoverer{open: c.OpenUpdateRepo, snapshot: snapshot, boots: boots, log: log,
		redact: source.NewRedactor(c.Source, nil), first: c.discoveryFirst, every: c.discoveryEvery}
	switch {
	case !source.IsGitURL(c.Source):
		d.off = "the source is a directory, which pxeops serve never writes to; run pxeops discover --repo <a clone> --push (e.g. from a systemd timer), or serve a git URL"
	case c.OpenUpdateRepo == nil:
		d.off = "no repository to propose to"
	}
	d.st.State = "off: no tree served yet"
	return d
}

func (d *discoverer) Status() DiscoveryStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	if st.LastPass != nil {
		t := *st.LastPass
		st.LastPass = &t
	}
	return st
}

// Run runs passes until ctx ends.
func (d *discoverer) Run(ctx context.Context) {
	first := cmp.Or(d.first, discoveryFirst)
	timer := time.NewTimer(first)
	defer timer.Stop()
	var done [sha256.Size]byte // what the last pass that succeeded saw
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := first // no tree served yet
		if snap := d.snapshot(); snap != nil {
			s := snap.Tree.Settings.Discovery
			wait = time.Duration(s.Interval)
			if d.on(s) {
				machines := d.boots.Discovered()
				if key := passKey(snap.Revision, machines); key != done && d.pass(ctx, s, machines) {
					done = key
				}
			}
		}
		timer.Reset(source.Jitter(cmp.Or(d.every, wait)))
	}
}

// on says whether passes run for settings s, and sets the status when
// they do not.
func (d *discoverer) on(s schema.DiscoverySettings) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Branch = s.Branch
	switch {
	case !s.Serve:
		d.st.State = "off: discovery.serve is not set in pxeops.yaml"
		return false
	case d.off != "":
		d.st.State = "off: " + d.off
		if !d.loggedOff {
			d.loggedOff = true
			d.log.Warn("discovery.serve is set but discovery does not run in serve", "reason", d.off, "branch", s.Branch)
		}
		return false
	}
	d.st.State = "on"
	return true
}

// pass runs one pass over machines and reports whether it succeeded.
func (d *discoverer) pass(ctx context.Context, s schema.DiscoverySettings, found []timeline.Discovered) bool {
	machines := make([]discover.Machine, len(found))
	for i, m := range found {
		machines[i] = discover.Machine(m)
	}
	now := time.Now()
	rep, err := d.run(ctx, machines, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.LastPass = &now
	if err != nil {
		// Propose's errors carry no credentials; the redactor also takes
		// out any that the source's URL holds, whatever made the error.
		msg := d.redact.String(err.Error())
		d.st.Error = msg
		d.log.Warn("discovery pass failed; serving goes on, the next pass retries", "branch", s.Branch, "err", msg)
		return false
	}
	d.st.Error, d.st.Branch, d.st.Commit, d.st.Proposed = "", rep.Branch, rep.Commit, 0
	for _, r := range rep.Results {
		if r.State == discover.StateProposed || r.State == discover.StateAlreadyProposed {
			d.st.Proposed++
		}
	}
	if rep.Changed {
		d.log.Info("discovery: proposed unmatched machines", "branch", rep.Branch, "machines", d.st.Proposed, "commit", rep.Commit, "pushed", rep.Pushed)
	} else {
		d.log.Debug("discovery: nothing new to propose", "branch", rep.Branch, "machines", d.st.Proposed)
	}
	return true
}

func (d *discoverer) run(ctx context.Context, machines []discover.Machine, now time.Time) (*discover.Report, error) {
	repo, err := d.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the repository: %w", err)
	}
	author := discoveryAuthor
	author.When = now
	// The proposal lives in pxeops' bare clone of the remote: only
	// pushed is it seen.
	return discover.Pass(ctx, repo, machines, discover.PassOptions{Author: author, Push: true})
}

// passKey names what a pass sees: the served revision and the set of
// unmatched MACs (not their counts or times, which change at every
// request and change no proposal).
func passKey(revision string, ms []timeline.Discovered) [sha256.Size]byte {
	macs := make([]string, len(ms))
	for i, m := range ms {
		macs[i] = m.MAC
	}
	slices.Sort(macs)
	h := sha256.New()
	h.Write([]byte(revision))
	for _, m := range macs {
		h.Write([]byte{0})
		h.Write([]byte(m))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}
