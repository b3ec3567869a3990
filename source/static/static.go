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

	"github.com/pxeops/pxeops/schema"
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

// Tree is the config tree that serves b to every machine:
// profiles/boot.yaml and groups/default.yaml.
func Tree(b Boot) (fs.FS, error) {
	if b.Kernel == "" {
		return nil, errors.New("no kernel")
	}
	return Machines(&b, nil)
}

// Machines is the tree that serves each MAC of perMAC its Boot (a group
// selecting that MAC alone) and, when def is set, def to every other
// machine. YAML is written as JSON (a subset of YAML), so no value needs
// YAML quoting.
func Machines(def *Boot, perMAC map[string]Boot) (fs.FS, error) {
	now := time.Unix(0, 0)
	tree := fstest.MapFS{
		"profiles": {Mode: fs.ModeDir | 0o555, ModTime: now},
		"groups":   {Mode: fs.ModeDir | 0o555, ModTime: now},
	}
	add := func(id string, b Boot, selector map[string]string) error {
		if b.Kernel == "" {
			return fmt.Errorf("%s: no kernel", id)
		}
		args := make([]string, len(b.Args))
		for i, a := range b.Args {
			args[i] = schema.EscapeTemplate(a)
		}
		profile, err := json.MarshalIndent(struct {
			Description string   `json:"description"`
			Kernel      string   `json:"kernel"`
			Initrd      []string `json:"initrd,omitempty"`
			Args        []string `json:"args,omitempty"`
		}{"pxeops boot", b.Kernel, b.Initrds, args}, "", "  ")
		if err != nil {
			return err
		}
		group, err := json.MarshalIndent(struct {
			Profile  string            `json:"profile"`
			Selector map[string]string `json:"selector,omitempty"`
		}{id, selector}, "", "  ")
		if err != nil {
			return err
		}
		tree["profiles/"+id+".yaml"] = &fstest.MapFile{Data: append(profile, '\n'), Mode: 0o444, ModTime: now}
		group_ := "groups/" + id + ".yaml"
		if id == "boot" {
			group_ = "groups/default.yaml"
		}
		tree[group_] = &fstest.MapFile{Data: append(group, '\n'), Mode: 0o444, ModTime: now}
		return nil
	}
	if def == nil {
		// No machine yet is a fleet, not a mistaken directory.
		tree["pxeops.yaml"] = &fstest.MapFile{Data: []byte(`{"allowEmpty": true}` + "\n"), Mode: 0o444, ModTime: now}
	} else {
		if err := add("boot", *def, nil); err != nil {
			return nil, err
		}
	}
	for mac, b := range perMAC {
		if err := add("mac-"+strings.ReplaceAll(strings.ToLower(mac), ":", "-"), b, map[string]string{"mac": mac}); err != nil {
			return nil, err
		}
	}
	return tree, nil
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

// Revision is the one revision Run emits.
func (s *Source) Revision() source.Revision { return s.rev }
