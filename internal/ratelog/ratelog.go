// Package ratelog logs repeated failures once per interval with a count:
// what anyone on the network can cause (TFTP floods, refused webhooks)
// must cost a log line per interval, not one per packet.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Logger logs repeated failures of one kind once per interval: the first
// at once, the rest counted, and at the end of the interval the latest of
// them with how many there were. A flood of bad packets then costs a line
// per kind per interval, not one per packet. Kinds are a small fixed set
// (never a client address), so the map stays small.
type Logger struct {
	log *slog.Logger

	mu    sync.Mutex
	every time.Duration
	kinds map[string]*logKind
}

type logKind struct {
	timer      *time.Timer // running while the interval lasts
	suppressed int
	msg        string // the latest suppressed record
	args       []any
}

// New returns a Logger writing to log, one line per kind per every.
func New(log *slog.Logger, every time.Duration) *Logger {
	return &Logger{log: log, every: every, kinds: map[string]*logKind{}}
}

// SetInterval changes the interval for kinds logged from now on.
func (r *Logger) SetInterval(every time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.every = every
}

// Warn logs msg at warn level unless kind was logged less than an
// interval ago, in which case it is counted.
func (r *Logger) Warn(kind, msg string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds[kind]
	if k == nil {
		k = &logKind{}
		r.kinds[kind] = k
	}
	if k.timer != nil {
		k.suppressed++
		k.msg, k.args = msg, args
		return
	}
	r.log.Warn(msg, args...)
	k.timer = time.AfterFunc(r.every, func() { r.tick(kind) })
}

// tick ends kind's interval: the count since its last line, if any, is
// logged and starts another interval.
func (r *Logger) tick(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds[kind]
	if k == nil || k.timer == nil {
		return // flushed
	}
	k.timer = nil
	if r.report(k) {
		k.timer = time.AfterFunc(r.every, func() { r.tick(kind) })
	}
}

// report logs k's suppressed records, if any; r is locked.
func (r *Logger) report(k *logKind) bool {
	if k.suppressed == 0 {
		return false
	}
	r.log.Warn(k.msg, append(k.args, "repeated", k.suppressed, "within", r.every)...)
	k.suppressed, k.msg, k.args = 0, "", nil
	return true
}

// Flush logs every count still pending and stops the timers (at
// shutdown, so the last interval's count is not lost).
func (r *Logger) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kinds {
		if k.timer != nil {
			k.timer.Stop()
			k.timer = nil
		}
		r.report(k)
	}
}
