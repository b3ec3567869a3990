package txtar

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []byte("a comment\n-- a.yaml --\nx: 1\n-- dir/b --\n-- want --\nline\n")
	a := Parse(in)
	if string(a.Comment) != "a comment\n" || len(a.Files) != 3 {
		t.Fatalf("parsed %q with %d files", a.Comment, len(a.Files))
	}
	if d, _ := a.Get("a.yaml"); string(d) != "x: 1\n" {
		t.Errorf("a.yaml = %q", d)
	}
	if d, ok := a.Get("dir/b"); !ok || len(d) != 0 {
		t.Errorf("dir/b = %q, %v", d, ok)
	}
	if out := Format(a); !bytes.Equal(out, in) {
		t.Errorf("Format = %q, want %q", out, in)
	}
	a.Set("want", []byte("new"))
	if d, _ := a.Get("want"); string(d) != "new" {
		t.Errorf("Set did not replace: %q", d)
	}
}
