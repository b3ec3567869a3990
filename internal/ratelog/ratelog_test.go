package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/logtest"
)

// A burst of one kind is one line at once and one with the count; other
// kinds are not held back by it.
func TestBurstIsTwoLines(t *testing.T) {
	var out bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), time.Hour)
	for i := range 5 {
		l.Warn("refused", "request refused", "n", i)
	}
	l.Warn("other", "something else")
	l.Flush()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "n=0") || !strings.Contains(lines[1], "something else") ||
		!strings.Contains(lines[2], "n=4 repeated=4 within=1h0m0s") {
		t.Errorf("log:\n%s", out.String())
	}
}

// After a quiet interval the next failure is logged at once again.
func TestQuietIntervalEnds(t *testing.T) {
	var out logtest.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), 20*time.Millisecond)
	l.Warn("k", "first")
	time.Sleep(100 * time.Millisecond) // the interval ends with nothing to report
	l.Warn("k", "second")
	l.Flush()
	if got := strings.Count(out.String(), "msg="); got != 2 || strings.Contains(out.String(), "repeated") {
		t.Errorf("log:\n%s", out.String())
	}
}
