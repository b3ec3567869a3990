// Package reconcile turns source revisions into served snapshots: load,
// validate, render, then publish with one atomic pointer swap. A revision
// that fails keeps the last good snapshot serving.
//
// Failures come in two kinds, as in Flux: an invalid tree needs a human
// (the same revision fails the same way, so it is not retried), and a tree
// that could not be read is retried with backoff until it can.
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

// Outcomes of an attempt, as shown in /status, logs and metrics.
const (
	ResultServed   = "served"
	ResultInvalid  = "invalid"  // needs a human: fix the tree
	ResultRetrying = "retrying" // the tree could not be read; retried with backoff
	// ResultAbandoned: a newer revision came while this one was loading, so
	// its load was stopped and the newer one taken instead.
	ResultAbandoned = "abandoned"
)

// Reconciler holds the served snapshot and the story of how it got there.
type Reconciler struct {
	opts    render.Options
	log     *slog.Logger
	metrics *Metrics
	check   func(*render.Snapshot) schema.Diagnostics

	served  atomic.Pointer[render.Snapshot]
	pending chan source.Revision // latest-wins mailbox of size one

	mu     sync.Mutex
	status Status
}

// Status is the reconciler's part of /status.
type Status struct {
	Ready       bool     `json:"ready"`
	Served      *Served  `json:"served"`
	LastAttempt *Attempt `json:"last_attempt,omitempty"`
	// InProgress is the revision being loaded now, if any.
	InProgress *Progress `json:"in_progress,omitempty"`
}

// Progress is a load under way.
type Progress struct {
	Revision  string    `json:"revision"`
	Since     time.Time `json:"since"`
	RunningMS float64   `json:"running_ms"`
}

// Served describes the snapshot being served.
type Served struct {
	Revision  string    `json:"revision"`
	Digest    string    `json:"digest"`
	Since     time.Time `json:"since"`
	Profiles  int       `json:"profiles"`
	Groups    int       `json:"groups"`
	Images    int       `json:"images"`
	Templates int       `json:"templates"`
	Warnings  int       `json:"warnings"`
}

// Attempt describes the last revision tried, served or not.
type Attempt struct {
	Revision   string             `json:"revision"`
	At         time.Time          `json:"at"`
	DurationMS float64            `json:"duration_ms"`
	Result     string             `json:"result"`
	Action     string             `json:"action,omitempty"`
	Errors     int                `json:"errors"`
	Warnings   int                `json:"warnings"`
	NextRetry  *time.Time         `json:"next_retry,omitempty"`
	Findings   schema.Diagnostics `json:"diagnostics,omitempty"`
	Truncated  bool               `json:"diagnostics_truncated,omitempty"`
}

// maxFindings caps the diagnostics kept in /status; check lists them all.
const maxFindings = 100

// Backoff bounds for revisions that could not be read.
const (
	minRetry = time.Second
	maxRetry = time.Minute
)

// New makes a reconciler; metrics may be nil.
func New(opts render.Options, log *slog.Logger, metrics *Metrics) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Cache == nil {
		opts.Cache = schema.NewCache()
	}
	return &Reconciler{opts: opts, log: log, metrics: metrics, pending: make(chan source.Revision, 1)}
}

// SetCheck adds a rule every tree must pass besides its own validity
// (the access rule: no secret served to someone else); its errors make
// the tree invalid like any other, so the last good one keeps serving.
// Call it before Run.
func (r *Reconciler) SetCheck(check func(*render.Snapshot) schema.Diagnostics) { r.check = check }

// Snapshot returns the snapshot being served, nil before the first one.
// Requests call it once and use that snapshot throughout, so each sees
// one revision, never a mix.
func (r *Reconciler) Snapshot() *render.Snapshot { return r.served.Load() }

// Status returns a copy of the reconciler's state.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	if p := st.InProgress; p != nil {
		c := *p
		c.RunningMS = float64(time.Since(c.Since).Microseconds()) / 1000
		st.InProgress = &c
	}
	return st
}

// Offer hands a revision to Run without blocking; a revision not yet
// picked up is replaced by the newer one.
func (r *Reconciler) Offer(rev source.Revision) {
	for {
		select {
		case r.pending <- rev:
			return
		default:
		}
		select {
		case <-r.pending:
		default:
		}
	}
}

// Run applies offered revisions until ctx ends, retrying unreadable ones
// with exponential backoff. A revision offered while another is loading
// stops that load: the newest revision is the one worth serving, and a
// slow tree must not hold back its own fix.
func (r *Reconciler) Run(ctx context.Context) {
	var retry <-chan time.Time
	var retryRev source.Revision
	var newer *source.Revision
	delay := minRetry
	for {
		var rev source.Revision
		if newer != nil {
			rev, newer, delay = *newer, nil, minRetry
		} else {
			select {
			case <-ctx.Done():
				return
			case rev = <-r.pending:
				delay = minRetry
			case <-retry:
				rev = retryRev
			}
		}
		retry = nil
		var result string
		result, newer = r.applyUntilNewer(ctx, rev)
		if result == ResultRetrying {
			retryRev, retry = rev, time.After(delay)
			r.setNextRetry(time.Now().Add(delay))
			delay = min(2*delay, maxRetry)
		}
	}
}

var errSuperseded = errors.New("a newer revision arrived")

// applyUntilNewer applies rev, abandoning it for a revision offered
// meanwhile, which it returns.
func (r *Reconciler) applyUntilNewer(ctx context.Context, rev source.Revision) (string, *source.Revision) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan string, 1)
	go func() { done <- r.Apply(actx, rev) }()
	select {
	case result := <-done:
		return result, nil
	case next := <-r.pending:
		cancel(errSuperseded)
		return <-done, &next
	}
}

// Apply loads one revision and serves it if it is valid. It returns the
// attempt's result; when ctx ends first, the load is abandoned.
func (r *Reconciler) Apply(ctx context.Context, rev source.Revision) string {
	start := time.Now()
	r.mu.Lock()
	r.status.InProgress = &Progress{Revision: rev.ID, Since: start.UTC()}
	r.mu.Unlock()
	opts := r.opts
	opts.Revision = rev.ID
	opts.Secrets = rev.Secrets
	snap, diags := render.Load(ctx, rev.FS, opts)
	if snap != nil && r.check != nil {
		if extra := r.check(snap); len(extra) > 0 {
			diags = append(diags, extra...)
			if extra.Errors() > 0 {
				snap = nil
			}
		}
	}
	took := time.Since(start)
	a := &Attempt{
		Revision:   rev.ID,
		At:         start.UTC(),
		DurationMS: float64(took.Microseconds()) / 1000,
		Errors:     diags.Errors(),
		Warnings:   diags.Warnings(),
		Findings:   diags,
	}
	if len(a.Findings) > maxFindings {
		a.Findings, a.Truncated = a.Findings[:maxFindings], true
	}
	// What still serves while this revision does not.
	kept := "the last good snapshot keeps serving"
	if r.served.Load() == nil {
		kept = "nothing is served yet"
	}
	switch cause := context.Cause(ctx); {
	case cause != nil:
		snap = nil
		a.Result, a.Errors, a.Findings = ResultAbandoned, 0, nil
		a.Action = "not served: its load was stopped (" + cause.Error() + ")"
		r.log.Info("revision abandoned before it finished loading", "revision", rev.ID, "why", cause, "took", took.Round(time.Millisecond))
	case snap != nil:
		a.Result = ResultServed
		r.served.Store(snap)
		r.log.Info("serving revision", "revision", rev.ID, "digest", snap.Digest,
			"groups", len(snap.Tree.Groups), "warnings", a.Warnings, "took", took.Round(time.Millisecond))
	case diags.Transient():
		a.Result = ResultRetrying
		a.Action = "the tree could not be read; retrying with backoff; " + kept
		r.log.Warn("revision unreadable, will retry", "revision", rev.ID, "err", diags.FirstError())
	default:
		a.Result = ResultInvalid
		a.Action = "needs a human: fix the errors (pxeops check lists them); " + kept
		r.log.Error("revision rejected", "revision", rev.ID, "errors", a.Errors, "first", diags.FirstError())
	}
	r.mu.Lock()
	r.status.LastAttempt = a
	r.status.InProgress = nil
	if snap != nil {
		t := snap.Tree
		r.status.Ready = true
		r.status.Served = &Served{
			Revision: rev.ID, Digest: snap.Digest, Since: start.UTC(),
			Profiles: len(t.Profiles), Groups: len(t.Groups), Images: len(t.Images), Templates: len(t.Templates),
			Warnings: a.Warnings,
		}
	}
	r.mu.Unlock()
	r.metrics.observe(a, snap)
	return a.Result
}

func (r *Reconciler) setNextRetry(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.status.LastAttempt; a != nil {
		c := *a
		c.NextRetry = &t
		r.status.LastAttempt = &c
	}
}
