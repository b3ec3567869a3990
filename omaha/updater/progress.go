package updater

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// progress reports a download: a log line every logEvery, and a bar
// redrawn in place when a terminal is given.
type progress struct {
	log      *slog.Logger
	term     io.Writer
	url      string
	total    int64
	n        int64
	start    time.Time
	lastLog  time.Time
	lastDraw time.Time
	onData   func() // called on every write: the stall watchdog
}

const logEvery = 10 * time.Second

func newProgress(log *slog.Logger, term io.Writer, url string, total int64) *progress {
	now := time.Now()
	return &progress{log: log, term: term, url: url, total: total, start: now, lastLog: now}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.onData != nil {
		p.onData()
	}
	now := time.Now()
	if now.Sub(p.lastLog) >= logEvery {
		p.lastLog = now
		p.log.Info("downloading", "url", p.url, "percent", p.percent(), "bytes", p.n, "rate_mb_s", p.rate(now))
	}
	if p.term != nil && now.Sub(p.lastDraw) >= 200*time.Millisecond {
		p.lastDraw = now
		p.draw(now)
	}
	return len(b), nil
}

func (p *progress) done(ok bool) {
	now := time.Now()
	if p.term != nil {
		p.draw(now)
		fmt.Fprintln(p.term)
	}
	if ok {
		p.log.Info("downloaded", "url", p.url, "bytes", p.n, "seconds", now.Sub(p.start).Seconds(), "rate_mb_s", p.rate(now))
	}
}

// percent is -1 when the size is unknown.
func (p *progress) percent() int {
	if p.total <= 0 {
		return -1
	}
	return int(p.n * 100 / p.total)
}

func (p *progress) rate(now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 {
		return "0.0"
	}
	return fmt.Sprintf("%.1f", float64(p.n)/secs/1e6)
}

func (p *progress) draw(now time.Time) {
	const width = 30
	name := p.url[strings.LastIndexByte(p.url, '/')+1:]
	bar, pct := strings.Repeat("?", width), "  ?%"
	if pc := p.percent(); pc >= 0 {
		filled := min(width, pc*width/100)
		bar = strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		pct = fmt.Sprintf("%3d%%", pc)
	}
	fmt.Fprintf(p.term, "\r%-40.40s [%s] %s %8.1f MB %s MB/s", name, bar, pct, float64(p.n)/1e6, p.rate(now))
}
