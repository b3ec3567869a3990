package httpserver

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLimitedWarn writes one warning at most once per interval, with the
// number it dropped since its last line: a flood of refused requests must
// not flood the log. (serve/tftpserver has its own for TFTP floods; the
// two are to become one.)
type rateLimitedWarn struct {
	log      *slog.Logger
	msg      string
	interval time.Duration
	now      func() time.Time // time.Now; tests set a clock

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func newRateLimitedWarn(log *slog.Logger, msg string, interval time.Duration) *rateLimitedWarn {
	return &rateLimitedWarn{log: log, msg: msg, interval: interval, now: time.Now}
}

// Warn logs msg with attrs, or counts it when a line went out less than
// an interval ago.
func (l *rateLimitedWarn) Warn(ctx context.Context, attrs ...slog.Attr) {
	l.mu.Lock()
	now := l.now()
	if now.Before(l.next) {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.next, l.suppressed = now.Add(l.interval), 0
	l.mu.Unlock()
	if n > 0 {
		attrs = append(attrs, slog.Int("suppressed", n))
	}
	l.log.LogAttrs(ctx, slog.LevelWarn, l.msg, attrs...)
}
