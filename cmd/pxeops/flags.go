package main

import (
	"context"
	"path/filepath"

	"errors"
	"flag"
	"fmt"
	"github.com/pxeops/pxeops/source"
	"io"
	"io/fs"
	"os"
	"strings"
)

// newFlags makes a subcommand's flag set; usage text goes to stderr.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pxeops %s\n\nFlags (each also read from PXEOPS_<FLAG>):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, then fills each flag not given on the command
// line from PXEOPS_<FLAG> (dashes become underscores). It returns the
// exit code to stop with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	code := -1
	fs.VisitAll(func(f *flag.Flag) {
		env := "PXEOPS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if given[f.Name] || !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			fmt.Fprintf(stderr, "pxeops %s: %s: %v\n", fs.Name(), env, err)
			code = exitUsage
		}
	})
	return code
}

// openTree opens the tree named by the single optional argument (default
// "."): a directory, read once the way serve's directory source reads it
// (confined to it, special files refused, never waited on); or, for a git URL, or a
// local repository given with --ref, the tree of the ref's commit. The
// returned cleanup must be called when done.
func openTree(ctx context.Context, fset *flag.FlagSet, g *gitFlags, stderr io.Writer) (tree fs.FS, name string, cleanup func(), code int) {
	if fset.NArg() > 1 {
		fmt.Fprintf(stderr, "pxeops %s: one directory or git URL expected, got %d arguments\n", fset.Name(), fset.NArg())
		return nil, "", nil, exitUsage
	}
	name = "."
	if fset.NArg() == 1 {
		name = fset.Arg(0)
	}
	refGiven := given(fset, "ref")
	if source.IsGitURL(name) || refGiven {
		remote := name
		if !source.IsGitURL(name) {
			abs, err := filepath.Abs(name)
			if err != nil {
				fmt.Fprintf(stderr, "pxeops %s: %v\n", fset.Name(), err)
				return nil, "", nil, exitUsage
			}
			remote = abs
		}
		rev, cleanup, err := g.fetchOnce(ctx, remote)
		if err != nil {
			fmt.Fprintf(stderr, "pxeops %s: %s@%s: %v\n", fset.Name(), source.Redact(name), g.ref, err)
			if errors.As(err, new(usageError)) {
				return nil, "", nil, exitUsage
			}
			return nil, "", nil, exitInvalid
		}
		return rev.FS, source.Redact(name) + "@" + rev.ID[:12], cleanup, -1
	}
	dir, err := source.NewDir(name, source.DirOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "pxeops %s: %v: give the path of a config repository\n", fset.Name(), err)
		return nil, "", nil, exitUsage
	}
	rev, err := dir.Once()
	if err != nil {
		dir.Close()
		fmt.Fprintf(stderr, "pxeops %s: %s: %v\n", fset.Name(), name, err)
		return nil, "", nil, exitInvalid
	}
	return rev.FS, name, func() { dir.Close() }, -1
}

// choice is a flag whose value must be one of a fixed set.
type choice struct {
	value   string
	allowed []string
}

func (c *choice) String() string { return c.value }

func (c *choice) Set(v string) error {
	for _, a := range c.allowed {
		if v == a {
			c.value = v
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(c.allowed, ", "))
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// given reports whether flag name was set, on the command line or from
// its environment variable (parseFlags sets those too).
func given(fset *flag.FlagSet, name string) bool {
	set := false
	fset.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
