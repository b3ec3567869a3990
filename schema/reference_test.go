package schema

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the reference section of README.md")

// README.md's reference section is exactly what the schema generates, so
// the documented fields and defaults are the ones the decoder applies.
func TestReadmeReference(t *testing.T) {
	const begin, end = "<!-- reference:begin -->\n", "<!-- reference:end -->"
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", begin, end)
	}
	want := Reference()
	if *update {
		readme = readme[:i+len(begin)] + want + readme[j:]
		if err := os.WriteFile("../README.md", []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := readme[i+len(begin) : j]; got != want {
		t.Errorf("README.md reference is out of date; run go test ./schema -run TestReadmeReference -update\n--- README ---\n%s\n--- schema ---\n%s", got, want)
	}
}
