package matchbox

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/txtar"
	"github.com/pxeops/pxeops/render"
)

var update = flag.Bool("update", false, "rewrite the generated sections of testdata/import golden files")

const goldenServerURL = "http://pxe.test:8080"

// Golden cases: each testdata/import/<case>/case.txtar holds a matchbox
// data directory (sections matchbox/...), and side by side what the
// import makes of it: the tree (pxeops/...), the report, and what check
// says of the tree (check). Those are rewritten with -update. The serves
// section is written by hand from matchbox's documented behaviour (its
// iPXE endpoint prints the profile's kernel, args and initrds as they
// are) and is never rewritten: for each request, what the imported tree
// must serve.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/import/*/case.txtar")
	if len(files) < 4 {
		t.Fatalf("found %d golden cases, expected at least 4 in testdata/import", len(files))
	}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			dir := t.TempDir()
			var serves string
			for _, f := range a.Files {
				if rel, ok := strings.CutPrefix(f.Name, "matchbox/"); ok {
					p := filepath.Join(dir, filepath.FromSlash(rel))
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
				} else if f.Name == "serves" {
					serves = string(f.Data)
				}
			}
			in, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(in)
			var report strings.Builder
			for _, f := range res.Report {
				fmt.Fprintln(&report, f)
			}
			tree := fstest.MapFS{}
			for n, d := range res.Files {
				tree[n] = &fstest.MapFile{Data: d}
			}
			snap, diags := render.Load(context.Background(), tree, render.Options{ServerURL: goldenServerURL, Revision: "golden"})
			var check strings.Builder
			for _, d := range diags {
				fmt.Fprintln(&check, d)
			}
			if snap == nil {
				check.WriteString("invalid\n")
			} else {
				check.WriteString("valid\n")
			}

			got := &txtar.Archive{Comment: a.Comment}
			for _, f := range a.Files {
				if strings.HasPrefix(f.Name, "matchbox/") {
					got.Files = append(got.Files, f)
				}
			}
			for _, n := range slices.Sorted(func(yield func(string) bool) {
				for n := range res.Files {
					if !yield(n) {
						return
					}
				}
			}) {
				got.Set("pxeops/"+n, res.Files[n])
			}
			got.Set("report", []byte(report.String()))
			got.Set("check", []byte(check.String()))
			if serves != "" {
				got.Set("serves", []byte(serves))
			}
			if *update {
				if err := os.WriteFile(file, txtar.Format(got), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if g, w := txtar.Format(got), txtar.Format(a); !bytes.Equal(g, w) {
				t.Errorf("import differs from %s (go test ./internal/matchbox -run TestGolden -update, then review).\n--- got ---\n%s", file, g)
			}

			// Cases named unconvertible* may leave a tree check rejects;
			// every other import must load without errors.
			if !strings.HasPrefix(name, "unconvertible") && diags.Errors() > 0 {
				t.Errorf("the imported tree does not pass check:\n%s", check.String())
			}
			if serves != "" {
				if snap == nil {
					t.Fatalf("serves expectations, but the tree is invalid:\n%s", check.String())
				}
				checkServes(t, snap, serves)
			}
		})
	}
}

// checkServes compares, for each "## QUERY" block of want, the matched
// group and the kernel, initrds and args of pxeops' iPXE script with the
// hand-written lines: "group ID", "kernel PATH", "initrd PATH" and
// "arg ARG", paths as matchbox's profile has them (pxeops makes them
// absolute on its server URL) and args without the initrd= and pxeops.*
// ones pxeops adds; and "config-has TEXT" lines, for what the config
// served must contain.
func checkServes(t *testing.T, snap *render.Snapshot, want string) {
	t.Helper()
	blocks := strings.Split("\n"+want, "\n## ")
	n := 0
	for _, b := range blocks[1:] { // blocks[0]: the comment before the first
		q, body, _ := strings.Cut(b, "\n")
		n++
		m, err := render.ParseMachineQuery(strings.TrimSpace(q))
		if err != nil {
			t.Fatalf("serves: %s: %v", q, err)
		}
		g := snap.Lookup(&m)
		if g == nil {
			t.Errorf("%s: no group matches", q)
			continue
		}
		var script bytes.Buffer
		if err := snap.WriteScript(&script, g, &m); err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		got := []string{"group " + g.ID}
		for _, l := range strings.Split(script.String(), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "kernel":
				got = append(got, "kernel "+strings.TrimPrefix(f[1], goldenServerURL))
				for _, arg := range f[2:] {
					if !strings.HasPrefix(arg, "initrd=") && !strings.HasPrefix(arg, "pxeops.") {
						got = append(got, "arg "+arg)
					}
				}
			case len(f) >= 2 && f[0] == "initrd":
				got = append(got, "initrd "+strings.TrimPrefix(f[len(f)-1], goldenServerURL))
			}
		}
		var wantLines []string
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			// "config-has TEXT": the config served at /config contains TEXT.
			if text, ok := strings.CutPrefix(l, "config-has "); ok {
				var cfg bytes.Buffer
				if err := snap.WriteConfig(&cfg, g, &m); err != nil {
					t.Errorf("%s: config: %v", q, err)
				} else if !strings.Contains(cfg.String(), text) {
					t.Errorf("%s: config lacks %q:\n%s", q, text, cfg.String())
				}
				continue
			}
			wantLines = append(wantLines, l)
		}
		// Order within kinds: kernel first, then initrds in order, args in order.
		if !slices.Equal(sortKinds(got), sortKinds(wantLines)) {
			t.Errorf("%s: pxeops serves\n%s\nwant (matchbox)\n%s\nscript:\n%s", q, strings.Join(got, "\n"), strings.Join(wantLines, "\n"), script.String())
		}
	}
	if n == 0 {
		t.Fatal("serves section has no ## QUERY blocks")
	}
}

// sortKinds orders lines by kind, keeping each kind's own order.
func sortKinds(lines []string) []string {
	rank := map[string]int{"group": 0, "kernel": 1, "initrd": 2, "arg": 3}
	out := slices.Clone(lines)
	slices.SortStableFunc(out, func(a, b string) int {
		ka, _, _ := strings.Cut(a, " ")
		kb, _, _ := strings.Cut(b, " ")
		return rank[ka] - rank[kb]
	})
	return out
}
