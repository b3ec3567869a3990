package main

import (
	"errors"
	"flag"
	"fmt"
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

// openTree opens DIR (the single optional argument, default ".") as the
// config tree. os.Root confines reads to it, symlinks included.
func openTree(fset *flag.FlagSet, stderr io.Writer) (fs.FS, string, int) {
	if fset.NArg() > 1 {
		fmt.Fprintf(stderr, "pxeops %s: one directory expected, got %d arguments\n", fset.Name(), fset.NArg())
		return nil, "", exitUsage
	}
	dir := "."
	if fset.NArg() == 1 {
		dir = fset.Arg(0)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops %s: %v: give the path of a config repository\n", fset.Name(), err)
		return nil, "", exitUsage
	}
	return root.FS(), dir, -1
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
