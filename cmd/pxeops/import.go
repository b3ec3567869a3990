package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/pxeops/pxeops/internal/matchbox"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

const importSynopsis = `import matchbox DATA-DIR OUT-DIR

Converts a matchbox data directory (profiles/, groups/, ignition/, cloud/,
generic/) into a pxeops config tree in OUT-DIR, which must be empty or
absent. Prints what it changed and what it could not convert as
FILE:LINE: lines, then check's findings on the new tree.
Exit 0 the tree passes check, 1 it was written with errors, 2 usage.`

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "matchbox" {
		fmt.Fprintf(stderr, "Usage: pxeops %s\n", importSynopsis)
		if len(args) > 0 && args[0] != "-h" && args[0] != "--help" && args[0] != "-help" {
			fmt.Fprintf(stderr, "pxeops import: unknown source %q: matchbox is the one there is\n", args[0])
		}
		return exitUsage
	}
	fset := newFlags("import matchbox", importSynopsis, stderr)
	if code := parseFlags(fset, args[1:], stderr); code >= 0 {
		return code
	}
	if fset.NArg() != 2 {
		fmt.Fprintf(stderr, "pxeops import matchbox: DATA-DIR and OUT-DIR expected, got %d arguments\n", fset.NArg())
		return exitUsage
	}
	dataDir, outDir := fset.Arg(0), fset.Arg(1)
	if err := emptyOrAbsent(outDir); err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: OUT-DIR %v\n", err)
		return exitUsage
	}
	in, err := matchbox.Read(dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: DATA-DIR %s: %v\n", dataDir, err)
		return exitUsage
	}
	if len(in) == 0 {
		fmt.Fprintf(stderr, "pxeops import matchbox: DATA-DIR %s: no profiles/, groups/, ignition/, cloud/ or generic/ files: not a matchbox data directory\n", dataDir)
		return exitUsage
	}
	res := matchbox.Convert(in)
	if err := writeImported(outDir, res.Files); err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: %v\n", err)
		return exitInvalid
	}
	for _, f := range res.Report {
		f.File = filepath.Join(dataDir, filepath.FromSlash(f.File))
		fmt.Fprintln(stdout, f)
	}
	// The new tree, loaded as check loads a directory.
	dir, err := source.NewDir(outDir, source.DirOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: %v\n", err)
		return exitInvalid
	}
	defer dir.Close()
	rev, err := dir.Once()
	if err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: %s: %v\n", outDir, err)
		return exitInvalid
	}
	snap, diags := render.Load(ctx, rev.FS, render.Options{ServerURL: schema.SampleServerURL})
	if err := context.Cause(ctx); err != nil {
		fmt.Fprintf(stderr, "pxeops import matchbox: interrupted: %v\n", err)
		return exitInvalid
	}
	for _, d := range diags {
		d.File = filepath.Join(outDir, d.File)
		fmt.Fprintln(stdout, d)
	}
	if snap == nil {
		fmt.Fprintf(stdout, "%s: written, invalid: %s, %s; fix what the lines above say, then pxeops check %s\n", outDir, plural(diags.Errors(), "error"), plural(diags.Warnings(), "warning"), outDir)
		return exitInvalid
	}
	fmt.Fprintf(stdout, "%s: written, valid: %s, %s, %s; digest %s\n", outDir,
		plural(len(snap.Tree.Profiles), "profile"), plural(len(snap.Tree.Groups), "group"), plural(len(snap.Tree.Templates), "template"), snap.Digest)
	return exitOK
}

// emptyOrAbsent refuses an OUT-DIR that holds anything: an import never
// mixes its files with others or overwrites one.
func emptyOrAbsent(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%s is not empty: give a new or empty directory", dir)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// writeImported writes files (slash paths) under dir, creating each anew.
func writeImported(dir string, files map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, werr := f.Write(files[name])
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}
