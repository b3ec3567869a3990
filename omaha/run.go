package omaha

import (
	"context"
	"math/rand/v2"
	"time"
)

// Schedule is what the served tree says about running passes.
type Schedule struct {
	Periodic  bool          // omaha.sync: a pass every Interval
	OnTrigger bool          // passes on Trigger (omaha.sync or omaha.proxy)
	Interval  time.Duration // omaha.interval
}

// Run runs passes until ctx ends: every Interval (jittered ±10%) while
// the schedule is periodic, and at once on Trigger. open gives the
// repository for each pass, fetched anew.
func (u *Updater) Run(ctx context.Context, open func(context.Context) (*Repo, error), schedule func() Schedule) {
	timer := time.NewTimer(10 * time.Second) // let the first snapshot arrive
	defer timer.Stop()
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
		if s.Periodic || triggered && s.OnTrigger {
			if repo, err := open(ctx); err != nil {
				u.log().Warn("updater: cannot open the repository; retrying next pass", "err", err)
			} else if _, err := u.Sync(ctx, repo); err != nil {
				u.log().Warn("updater pass failed", "err", err)
			}
		}
		every := s.Interval
		if every <= 0 || !s.Periodic {
			every = 5 * time.Minute // look again for omaha.sync being turned on
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(every + time.Duration((rand.Float64()-0.5)*0.2*float64(every)))
	}
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
