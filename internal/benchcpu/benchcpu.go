// Package benchcpu adds the process's CPU time per operation to a
// benchmark's figures. On a shared machine the wall time a benchmark
// reports includes the time other tenants held the CPU; the CPU time this
// process spent (user and system, every thread, so the garbage collector
// too) does not, so two variants compared by it are far less noisy.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Meter is started before a benchmark's loop and reported after it.
type Meter struct{ start time.Duration }

// Start reads the process's CPU time so far.
func Start() Meter { return Meter{start: used()} }

// Report adds "cpu-ns/op": the CPU time since Start over b.N.
func (m Meter) Report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(used()-m.start)/float64(b.N), "cpu-ns/op")
	}
}

func used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
