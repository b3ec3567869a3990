package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A clean tree's JSON report lists its diagnostics as [], not null.
func TestCheckJSONEmptyDiagnostics(t *testing.T) {
	code, out, errOut := runCLI(t, "check", "--format", "json", filepath.Join("..", "..", "examples", "quickstart"))
	if code != exitOK || !strings.Contains(out, `"diagnostics": []`) {
		t.Errorf("check --format json = %d\n%s%s", code, out, errOut)
	}
}
