package updater_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/source/propose"
)

// However many triggers arrive during a pass, they fold into one more.
func TestTriggersFoldIntoOnePass(t *testing.T) {
	var opens atomic.Int32
	release := make(chan struct{})
	open := func(ctx context.Context) (*propose.Repo, error) {
		if opens.Add(1) == 1 {
			<-release
		}
		return nil, errors.New("no repository in this test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := &updater.Updater{}
	done := make(chan struct{})
	go func() {
		u.Run(ctx, open, func() updater.Schedule { return updater.Schedule{OnTrigger: true, Interval: time.Hour} })
		close(done)
	}()
	u.Trigger()
	for opens.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 100 {
		u.Trigger()
	}
	close(release)
	time.Sleep(200 * time.Millisecond)
	if n := opens.Load(); n != 2 {
		t.Fatalf("%d passes, want 2: the running one and one for the 100 triggers", n)
	}
	cancel()
	<-done
}

// A pass that fails in a way worth retrying is retried with backoff, well
// before the interval.
func TestRetryableFailureBacksOff(t *testing.T) {
	var opens atomic.Int32
	open := func(ctx context.Context) (*propose.Repo, error) {
		opens.Add(1)
		return nil, errors.New("remote unreachable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := &updater.Updater{}
	go u.Run(ctx, open, func() updater.Schedule {
		return updater.Schedule{OnTrigger: true, Interval: time.Hour, Retry: 20 * time.Millisecond}
	})
	u.Trigger()
	deadline := time.Now().Add(10 * time.Second)
	for opens.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := opens.Load(); n < 4 {
		t.Fatalf("%d passes in 10s; retries did not back off below the 1h interval", n)
	}
	if err := u.LastError(); !strings.Contains(err, "open the repository: remote unreachable") {
		t.Errorf("last error %q", err)
	}
}
