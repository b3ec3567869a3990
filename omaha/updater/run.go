package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

// Schedule is what the served tree says about running passes.
type Schedule struct {
	Periodic  bool          // omaha.sync: a pass every Interval
	OnTrigger bool          // passes on Trigger (omaha.sync or omaha.proxy)
	Interval  time.Duration // omaha.interval
	// Retry is the first wait after a pass that failed in a way worth
	// retrying (network, server, not published); it doubles while passes
	// keep failing, up to Interval.
	Retry time.Duration
}

// Run runs passes until ctx ends: every Interval (jittered ±10%) while
// the schedule is periodic, sooner with backoff after retryable failures,
// and at once on Trigger. open gives the repository for each pass,
// fetched anew.
func (u *Updater) Run(ctx context.Context, open func(context.Context) (*propose.Repo, error), schedule func() Schedule) {
	timer := time.NewTimer(10 * time.Second) // let the first snapshot arrive
	defer timer.Stop()
	failures := 0
	for {
		triggered := false
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-u.triggers():
			triggered = true
		}
		s := schedule()
		// A triggered pass that failed for now is retried like one.
		if s.Periodic || (triggered || failures > 0) && s.OnTrigger {
			if u.runPass(ctx, open) {
				failures++
			} else {
				failures = 0
			}
		}
		every := s.Interval
		if every <= 0 || !s.Periodic {
			every = 5 * time.Minute // look again for omaha.sync being turned on
		}
		if failures > 0 && s.Retry > 0 {
			every = min(every, s.Retry<<min(failures-1, 10))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(source.Jitter(every))
	}
}

// runPass runs one pass and reports whether it failed in a way worth
// retrying soon.
func (u *Updater) runPass(ctx context.Context, open func(context.Context) (*propose.Repo, error)) (retry bool) {
	repo, err := open(ctx)
	if err != nil {
		u.setLastError(fmt.Errorf("open the repository: %w", err))
		u.log().Warn("updater: cannot open the repository; retrying with backoff", "err", err)
		return true
	}
	results, err := u.Sync(ctx, repo)
	if err != nil {
		u.log().Warn("updater pass failed", "err", err)
		return false // an invalid tree waits for a commit, not a timer
	}
	for _, st := range results {
		if st.Retry {
			return true
		}
	}
	return false
}

// Trigger asks for a pass now; triggers while one is pending fold into it,
// so however many hosts report a new version, it is downloaded once.
func (u *Updater) Trigger() {
	select {
	case u.triggers() <- struct{}{}:
	default:
	}
}

func (u *Updater) triggers() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.trigger == nil {
		u.trigger = make(chan struct{}, 1)
	}
	return u.trigger
}
