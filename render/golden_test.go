package render

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata golden files")

// Golden cases: each testdata/{check,render}/*.txtar holds a tree and,
// side by side, what loading it must give. check cases want the exact
// diagnostics; render cases also list machines (one query string a line)
// and want what each is served (the GRUB config, not the iPXE script,
// for a group with loader grub; a line ending in " [installed]" is a
// machine the server's state store knows as installed, which no query
// can say; a profile whose image has a rollout shows the machine's
// bucket and the version it gets). testdata/examples/<name>.txtar holds the
// machines and wants for the tree in examples/<name>.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../testdata/*/*.txtar")
	if len(files) < 30 {
		t.Fatalf("found %d golden files, expected the suite in ../testdata", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "../testdata/"), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			got := goldenOutput(t, file, a)
			want, ok := a.Get("want")
			if *update {
				a.Set("want", []byte(got))
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !ok {
				t.Fatalf("no want section; run go test ./render -run TestGolden -update and review the result")
			}
			if got != string(want) {
				t.Errorf("output differs from the want section.\n--- got ---\n%s--- want ---\n%s", got, want)
			}
		})
	}
}

func goldenOutput(t *testing.T, file string, a *txtar.Archive) string {
	var fsys fs.FS
	tree := fstest.MapFS{}
	fsys = tree
	if filepath.Base(filepath.Dir(file)) == "examples" {
		fsys = os.DirFS(filepath.Join("..", "examples", strings.TrimSuffix(filepath.Base(file), ".txtar")))
	}
	var machines []string
	for _, f := range a.Files {
		switch f.Name {
		case "want":
		case "machines":
			for _, l := range strings.Split(strings.TrimSpace(string(f.Data)), "\n") {
				if l != "" {
					machines = append(machines, l)
				}
			}
		default:
			tree[f.Name] = &fstest.MapFile{Data: f.Data}
		}
	}
	snap, diags := Load(context.Background(), fsys, Options{ServerURL: "http://pxe.test:8080", Revision: "golden"})
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintln(&b, d)
	}
	if snap == nil {
		b.WriteString("invalid\n")
		return b.String()
	}
	b.WriteString("valid\n")
	for _, q := range machines {
		fmt.Fprintf(&b, "\n## %s\n", q)
		q, installed := strings.CutSuffix(q, " [installed]")
		m, err := ParseMachineQuery(q)
		if err != nil {
			fmt.Fprintf(&b, "bad request: %v\n", err)
			continue
		}
		if installed {
			m.State = StateInstalled
		}
		g := snap.Lookup(&m)
		if g == nil {
			b.WriteString("no match\n")
			continue
		}
		fmt.Fprintf(&b, "group %s, profile %s\n", g.ID, g.Profile.ID)
		if r := g.Profile.Rollout(); r != nil {
			fmt.Fprintf(&b, "rollout %s %s at %s: bucket %d → %s\n", r.Image, r.Version, r.Share, r.Bucket(m.MAC), g.Profile.Boot(m.MAC).Version)
		}
		var out bytes.Buffer
		// A GRUB machine never runs the iPXE script: it gets the GRUB
		// config instead.
		if g.Loader() == LoaderGRUB {
			b.WriteString("[grub]\n")
			if err := snap.WriteGRUB(&out, g, &m, nil); err != nil {
				fmt.Fprintf(&b, "grub error: %v\n", err)
			}
		} else if err := snap.WriteScript(&out, g, &m); err != nil {
			fmt.Fprintf(&b, "script error: %v\n", err)
		}
		b.Write(out.Bytes())
		out.Reset()
		switch err := snap.WriteConfig(&out, g, &m); {
		case errors.Is(err, ErrNoConfig):
		case err != nil:
			fmt.Fprintf(&b, "config error: %v\n", err)
		default:
			fmt.Fprintf(&b, "[config]\n%s\n", strings.TrimSuffix(out.String(), "\n"))
		}
		out.Reset()
		if err := snap.WriteMetadata(&out, g, &m, q); err != nil {
			fmt.Fprintf(&b, "metadata error: %v\n", err)
		}
		fmt.Fprintf(&b, "[metadata]\n%s", out.String())
		if m.MAC == "" {
			continue
		}
		// The Pixiecore API asks by MAC alone, which may match another group.
		pm := Machine{MAC: m.MAC, State: m.State}
		pg := snap.Lookup(&pm)
		switch {
		case pg == nil:
			b.WriteString("[pixiecore] no match by mac alone\n")
			continue
		case pg != g:
			fmt.Fprintf(&b, "[pixiecore] mac alone: group %s, profile %s\n", pg.ID, pg.Profile.ID)
		default:
			b.WriteString("[pixiecore]\n")
		}
		out.Reset()
		if err := snap.WritePixiecore(&out, pg, &pm, nil); err != nil {
			fmt.Fprintf(&b, "pixiecore error: %v\n", err)
		}
		b.Write(out.Bytes())
	}
	return b.String()
}
