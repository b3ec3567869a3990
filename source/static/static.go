// Package static is the source of `pxeops boot`: one machine-independent
// profile (a kernel, its initrds and a command line) and a default group
// selecting every machine, built in memory and emitted once. It is
// Pixiecore's static mode on pxeops' one code path: the same load,
// snapshot, render and servers as a repository.
package static

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"
	"time"

	"github.com/pxeops/pxeops/source"
)

// Boot is what every machine boots.
type Boot struct {
	// Kernel and Initrds are http(s) URLs or paths under /assets/.
	Kernel  string
	Initrds []string
	// Args are the kernel's arguments, taken literally: a "{{" in them
	// is not a template action.
	Args []string
}

// Escape makes s literal text for the tree's template runner
// (text/template): "{{" becomes an action that prints "{{".
func Escape(s string) string { return strings.ReplaceAll(s, "{{", `{{"{{"}}`) }

// Tree is the config tree that serves b to every machine:
// profiles/boot.yaml and groups/default.yaml. YAML is written as JSON (a
// subset of YAML), so no value needs YAML quoting.
func Tree(b Boot) (fs.FS, error) {
	if b.Kernel == "" {
		return nil, errors.New("no kernel")
	}
	args := make([]string, len(b.Args))
	for i, a := range b.Args {
		args[i] = Escape(a)
	}
	profile, err := json.MarshalIndent(struct {
		Description string   `json:"description"`
		Kernel      string   `json:"kernel"`
		Initrd      []string `json:"initrd,omitempty"`
		Args        []string `json:"args,omitempty"`
	}{"pxeops boot: the kernel every machine gets", b.Kernel, b.Initrds, args}, "", "  ")
	if err != nil {
		return nil, err
	}
	group := []byte(`{"description": "every machine", "profile": "boot"}`)
	now := time.Unix(0, 0)
	return fstest.MapFS{
		"profiles":            {Mode: fs.ModeDir | 0o555, ModTime: now},
		"groups":              {Mode: fs.ModeDir | 0o555, ModTime: now},
		"profiles/boot.yaml":  {Data: append(profile, '\n'), Mode: 0o444, ModTime: now},
		"groups/default.yaml": {Data: append(group, '\n'), Mode: 0o444, ModTime: now},
	}, nil
}

// Source emits one revision of a fixed tree and then waits for the end:
// a source whose Run returns has stopped, to the daemon.
type Source struct {
	name string
	rev  source.Revision
}

// New is a source of fsys, named name in /status.
func New(name string, fsys fs.FS) (*Source, error) {
	id, err := digest(fsys)
	if err != nil {
		return nil, err
	}
	return &Source{name: name, rev: source.Revision{ID: id, FS: fsys}}, nil
}

// Run emits the tree once and returns when ctx ends.
func (s *Source) Run(ctx context.Context, emit func(source.Revision)) error {
	emit(s.rev)
	<-ctx.Done()
	return nil
}

// State reports the fixed tree.
func (s *Source) State() source.State {
	return source.State{Kind: "static", Location: s.name}
}

// Trigger does nothing: the tree never changes.
func (s *Source) Trigger() {}

// digest names the tree by its files' names and contents.
func digest(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
