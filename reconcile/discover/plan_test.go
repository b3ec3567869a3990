package discover_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/txtar"
	"github.com/pxeops/pxeops/reconcile/discover"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// Golden cases: each testdata/*.txtar holds a base tree, the branch's
// files (branch/...), the machines (machines.json, GET /v1/discovered's
// shape), optionally max; want is what became of each machine and the
// files proposed. Every case also checks that the base with the proposed
// files loads as check loads it, and that each proposed machine then gets
// its own group (with a profile) or still none (disabled).
func TestPlanGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) < 5 {
		t.Fatalf("found %d golden files", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			base, branch := fstest.MapFS{}, fstest.MapFS{}
			var machines []discover.Machine
			var o discover.Options
			for _, f := range a.Files {
				switch name, inBranch := strings.CutPrefix(f.Name, "branch/"); {
				case f.Name == "want":
				case f.Name == "machines.json":
					if machines, err = discover.Decode(bytes.NewReader(f.Data)); err != nil {
						t.Fatal(err)
					}
				case f.Name == "max":
					if o.Max, err = strconv.Atoi(strings.TrimSpace(string(f.Data))); err != nil {
						t.Fatal(err)
					}
				case inBranch:
					branch[name] = &fstest.MapFile{Data: f.Data}
				default:
					base[f.Name] = &fstest.MapFile{Data: f.Data}
				}
			}
			var tip fs.FS
			if len(branch) > 0 {
				tip = branch
			}
			plan, err := discover.MakePlan(context.Background(), base, tip, machines, o)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			for _, r := range plan.Results {
				fmt.Fprintf(&got, "%s: %s", r.MAC, r.State)
				switch {
				case r.Err != nil:
					fmt.Fprintf(&got, ": %v", r.Err)
				case r.Group != "":
					fmt.Fprintf(&got, " by groups/%s.yaml", r.Group)
				case r.File != "":
					fmt.Fprintf(&got, " %s", r.File)
				}
				got.WriteString("\n")
			}
			for _, f := range plan.Files {
				fmt.Fprintf(&got, "=== %s\n%s", f.Path, f.Content)
			}
			checkProposal(t, base, plan)
			want, ok := a.Get("want")
			if *update {
				a.Set("want", []byte(got.String()))
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !ok {
				t.Fatal("no want section; run go test ./discover -run TestPlanGolden -update and review the result")
			}
			if got.String() != string(want) {
				t.Errorf("plan differs from want.\n--- got ---\n%s--- want ---\n%s", got.String(), want)
			}
		})
	}
}

// checkProposal loads the base with the plan's files as pxeops check
// does: it must be valid, and each proposed machine must get its own new
// group, or, disabled, none.
func checkProposal(t *testing.T, base fstest.MapFS, plan *discover.Plan) {
	t.Helper()
	tree := fstest.MapFS{}
	for k, v := range base {
		tree[k] = v
	}
	for _, f := range plan.Files {
		tree[f.Path] = &fstest.MapFile{Data: f.Content}
	}
	snap, diags := render.Load(context.Background(), tree, render.Options{ServerURL: schema.SampleServerURL})
	if snap == nil {
		t.Fatalf("the proposed tree does not pass check:\n%v", diags)
	}
	for _, r := range plan.Results {
		if r.State != discover.StateProposed && r.State != discover.StateAlreadyProposed {
			continue
		}
		g := snap.Lookup(&schema.Machine{MAC: r.MAC, Arch: archOf(tree, r.File)})
		switch disabled := strings.HasSuffix(r.File, discover.DisabledSuffix); {
		case disabled && g != nil:
			t.Errorf("%s: disabled, yet groups/%s.yaml matches it", r.MAC, g.ID)
		case !disabled && (g == nil || "groups/"+g.ID+".yaml" != r.File):
			t.Errorf("%s: the proposed tree gives it %v, not %s", r.MAC, g, r.File)
		}
	}
}

// archOf reads the arch selector back from a proposed file.
func archOf(tree fstest.MapFS, file string) string {
	for line := range strings.SplitSeq(string(tree[file].Data), "\n") {
		if v, ok := strings.CutPrefix(line, "  arch: "); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
