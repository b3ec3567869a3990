package static

import (
	"context"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/render"
)

// The command line reaches the kernel as it was given, quotes and braces
// included (whitespace runs become one space).
func TestTreeRendersTheCommandLine(t *testing.T) {
	for _, cmdline := range []string{`console=ttyS0 quiet`, `a="b c" d`, `x={{y}} {{ .MAC }} }}{{`, `ds=nocloud;s=http://h.test/ "`} {
		fsys, err := Tree(Boot{Kernel: "https://h.test/k", Args: strings.Fields(cmdline)})
		if err != nil {
			t.Fatal(err)
		}
		snap, diags := render.Load(context.Background(), fsys, render.Options{ServerURL: "http://pxe.test"})
		if snap == nil {
			t.Fatalf("%q: %v", cmdline, diags)
		}
		m := &render.Machine{MAC: "52:54:00:00:00:01"}
		got, err := snap.Cmdline(snap.Lookup(m), m)
		if err != nil || got != cmdline {
			t.Errorf("command line %q, %v; want %q", got, err, cmdline)
		}
	}
}
