package updater

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestProgressBarAndLogLines(t *testing.T) {
	var term, logs bytes.Buffer
	p := newProgress(slog.New(slog.NewTextHandler(&logs, nil)), &term, "https://mirror/4152.2.0/flatcar_production_pxe.vmlinuz", 1000)
	p.Write(make([]byte, 500))
	p.done(true)
	out := term.String()
	if !strings.Contains(out, "flatcar_production_pxe.vmlinuz") || !strings.Contains(out, "[===============               ]  50%") || !strings.Contains(out, "\r") {
		t.Errorf("bar %q", out)
	}
	if !strings.Contains(logs.String(), "msg=downloaded") || !strings.Contains(logs.String(), "bytes=500") {
		t.Errorf("log %q", logs.String())
	}
}
