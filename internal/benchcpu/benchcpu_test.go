package benchcpu

import (
	"testing"
	"time"
)

// A busy loop of known length is reported as CPU time; a sleep is not.
func TestUsedCountsWorkNotWaiting(t *testing.T) {
	spin := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	before := used()
	spin(50 * time.Millisecond)
	busy := used() - before
	if busy < 5*time.Millisecond { // low: the machine may be shared
		t.Errorf("50ms of spinning counted as %v of CPU time", busy)
	}
	before = used()
	time.Sleep(50 * time.Millisecond)
	if idle := used() - before; idle > 20*time.Millisecond {
		t.Errorf("50ms of sleep counted as %v of CPU time", idle)
	}
}
