package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/txtar"
)

// matchboxCase writes the matchbox/ sections of a golden import case
// into a new directory.
func matchboxCase(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "import", name, "case.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range txtar.Parse(data).Files {
		if rel, ok := strings.CutPrefix(f.Name, "matchbox/"); ok {
			files[rel] = string(f.Data)
		}
	}
	if len(files) == 0 {
		t.Fatalf("%s: no matchbox/ files", name)
	}
	return writeTree(t, files)
}

func TestImportMatchboxValid(t *testing.T) {
	data := matchboxCase(t, "variables")
	out := filepath.Join(t.TempDir(), "tree")
	code, stdout, stderr := runCLI(t, "import", "matchbox", data, out)
	if code != exitOK {
		t.Fatalf("import = %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		filepath.Join(data, "cloud/web.yaml.tmpl") + ":2: .hostname -> .Metadata.hostname\n",
		out + ": written, valid: 1 profile, 2 groups, 1 template; digest ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	body, err := os.ReadFile(filepath.Join(out, "profiles", "web.yaml"))
	if err != nil || !strings.HasPrefix(string(body), "# Imported by pxeops import matchbox from profiles/web.json.\n") {
		t.Errorf("profiles/web.yaml: %v\n%s", err, body)
	}
	// What import calls valid, check does too.
	if code, stdout, _ := runCLI(t, "check", out); code != exitOK {
		t.Errorf("check of the import = %d\n%s", code, stdout)
	}
}

func TestImportMatchboxInvalid(t *testing.T) {
	data := matchboxCase(t, "unconvertible")
	out := filepath.Join(t.TempDir(), "tree")
	code, stdout, stderr := runCLI(t, "import", "matchbox", data, out)
	if code != exitInvalid {
		t.Fatalf("import = %d, want %d\n%s%s", code, exitInvalid, stdout, stderr)
	}
	for _, want := range []string{
		filepath.Join(data, "generic/odd.tmpl") + ":1: .request.raw_query: pxeops templates do not see the raw query",
		filepath.Join(out, "profiles/odd.yaml") + ":2:9: error: invalid URL",
		out + ": written, invalid: ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "templates", "odd.tmpl")); err != nil {
		t.Errorf("the tree was not written: %v", err)
	}
	if code, _, _ := runCLI(t, "check", out); code != exitInvalid {
		t.Errorf("check of the import = %d, want %d", code, exitInvalid)
	}
}

func TestImportMatchboxUsage(t *testing.T) {
	data := matchboxCase(t, "variables")
	full := t.TempDir()
	keep := filepath.Join(full, "README")
	if err := os.WriteFile(keep, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import"}, "Usage: pxeops import matchbox"},
		{[]string{"import", "bootcfg", data, t.TempDir()}, `unknown source "bootcfg"`},
		{[]string{"import", "matchbox", data}, "DATA-DIR and OUT-DIR expected, got 1"},
		{[]string{"import", "matchbox", data, full}, "is not empty"},
		{[]string{"import", "matchbox", filepath.Join(data, "nope"), filepath.Join(t.TempDir(), "o")}, "DATA-DIR"},
		{[]string{"import", "matchbox", notDir, filepath.Join(t.TempDir(), "o")}, "not a directory"},
		{[]string{"import", "matchbox", t.TempDir(), filepath.Join(t.TempDir(), "o")}, "not a matchbox data directory"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v = %d, want %d and %q\n%s%s", tc.args, code, exitUsage, tc.want, stdout, stderr)
		}
	}
	// The refused OUT-DIR is left as it was.
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("non-empty OUT-DIR now holds %d entries", len(entries))
	}
	// An empty OUT-DIR is fine.
	if code, stdout, _ := runCLI(t, "import", "matchbox", data, t.TempDir()); code != exitOK {
		t.Errorf("import into an empty directory = %d\n%s", code, stdout)
	}
}

// Every golden case but the unconvertible one imports into a tree
// check accepts, Butane configs included.
func TestImportMatchboxCases(t *testing.T) {
	for _, name := range []string{"flatcar", "three-configs"} {
		out := filepath.Join(t.TempDir(), "tree")
		if code, stdout, stderr := runCLI(t, "import", "matchbox", matchboxCase(t, name), out); code != exitOK {
			t.Errorf("%s: import = %d\n%s%s", name, code, stdout, stderr)
		}
		if code, stdout, _ := runCLI(t, "check", out); code != exitOK {
			t.Errorf("%s: check of the import = %d\n%s", name, code, stdout)
		}
	}
}
