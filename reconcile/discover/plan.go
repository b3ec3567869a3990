package discover

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source/propose"
)

// What became of a machine (Result.State).
const (
	StateProposed        = "proposed"         // its file is new on the branch
	StateAlreadyProposed = "already proposed" // the branch holds its file already
	StateMatched         = "already matched"  // a group of the base matches it, or names its MAC
	StateInTree          = "already in the tree"
	StateDeferred        = "deferred" // over the pass's limit; the next pass takes it
	StateInvalid         = "invalid"
)

// Result is what became of one machine.
type Result struct {
	MAC   string // canonical; "" when it is what is invalid (Err quotes it)
	State string
	File  string // relative to the config tree: the proposed (or existing) file
	Group string // StateMatched: the group
	Err   error  // StateInvalid: why
}

// Plan is one pass's proposal.
type Plan struct {
	Settings schema.DiscoverySettings // the base's pxeops.yaml
	Files    []propose.File
	Results  []Result // the machines given, in order, then the branch's kept ones
	Message  string
}

// Options bound a pass.
type Options struct {
	// Max is the most files one proposal holds; 0: DefaultMax.
	Max int
}

// MakePlan decides what to propose: for every machine that no group of
// the base matches (schema and render decide, as for a booting machine)
// and whose file the base does not hold, one group file, booting
// pxeops.yaml's discovery.profile (or disabled without one). branch is
// the tree at the proposal branch's tip (nil: none yet): a file it holds
// for a machine is kept as it is, so a machine seen again does not
// rewrite its proposal, and files it holds for machines not given now
// (the server restarted, its list evicted them) are kept while still
// unmatched. The base must load without errors.
func MakePlan(ctx context.Context, base, branch fs.FS, machines []Machine, o Options) (*Plan, error) {
	b, err := LoadBase(ctx, base)
	if err != nil {
		return nil, err
	}
	return b.Plan(branch, machines, o), nil
}

// Base is the config tree a plan is made against, loaded once.
type Base struct {
	fsys fs.FS
	snap *render.Snapshot
}

// LoadBase loads the tree the way check does; it must have no errors.
func LoadBase(ctx context.Context, fsys fs.FS) (*Base, error) {
	snap, diags := render.Load(ctx, fsys, render.Options{ServerURL: schema.SampleServerURL, Secrets: schema.AnySecrets()})
	if snap == nil {
		return nil, fmt.Errorf("the tree is invalid; fix it first (pxeops check): %s", diags.FirstError())
	}
	return &Base{fsys: fsys, snap: snap}, nil
}

// Settings are the base's discovery settings.
func (b *Base) Settings() schema.DiscoverySettings { return b.snap.Tree.Settings.Discovery }

// Plan is MakePlan on a loaded base.
func (b *Base) Plan(branch fs.FS, machines []Machine, o Options) *Plan {
	base, snap := b.fsys, b.snap
	max := o.Max
	if max <= 0 {
		max = DefaultMax
	}
	max = min(max, propose.MaxFiles)
	settings := snap.Tree.Settings.Discovery
	p := &Plan{Settings: settings}
	dir := "groups/"
	name := func(mac string) string {
		if settings.Profile == "" {
			return dir + FileName(mac) + DisabledSuffix
		}
		return dir + FileName(mac)
	}
	// place decides a machine no group matches: StateInTree when the
	// base holds its file (in either form: a person may have renamed it),
	// else proposed, with the branch's content when it has the file
	// (content nil: only then).
	place := func(mac string, content []byte) Result {
		r := Result{MAC: mac, File: name(mac)}
		for _, f := range []string{dir + FileName(mac), dir + FileName(mac) + DisabledSuffix} {
			if exists(base, f) {
				r.State, r.File = StateInTree, f
				return r
			}
		}
		r.State = StateProposed
		if old, ok := read(branch, r.File); ok {
			content, r.State = old, StateAlreadyProposed
		}
		if content == nil {
			return Result{}
		}
		if len(p.Files) == max {
			r.State = StateDeferred
			return r
		}
		p.Files = append(p.Files, propose.File{Path: r.File, Content: content})
		return r
	}
	done := map[string]bool{}
	for _, m := range machines {
		n, err := Normalize(m)
		if err != nil {
			r := Result{State: StateInvalid, Err: err}
			// A MAC that does not pass is quoted by err, never a line of its own.
			r.MAC, _ = schema.NormalizeValue(schema.KeyMAC, m.MAC)
			p.Results = append(p.Results, r)
			continue
		}
		if done[n.MAC] {
			continue // listed twice: the first entry stands
		}
		done[n.MAC] = true
		if g := matched(snap, n.MAC, n.Arch); g != "" {
			p.Results = append(p.Results, Result{MAC: n.MAC, State: StateMatched, Group: g})
			continue
		}
		p.Results = append(p.Results, place(n.MAC, Content(n, settings.Profile)))
	}
	for _, mac := range kept(branch, dir, settings.Profile) {
		if done[mac] || matched(snap, mac, "") != "" {
			continue // merged, or a person wrote a group for it since
		}
		if r := place(mac, nil); r.State != "" && r.State != StateInTree {
			p.Results = append(p.Results, r)
		}
	}
	p.Message = message(p)
	return p
}

// matched names the group that matches a machine of which the MAC (and
// arch, "" when unknown) is known, or any group selecting its MAC: a
// person wrote one for it already, whatever else it selects.
func matched(snap *render.Snapshot, mac, arch string) string {
	if g := snap.Lookup(&schema.Machine{MAC: mac, Arch: arch}); g != nil {
		return g.ID
	}
	for _, g := range snap.Groups() {
		if g.Source.Selector[schema.KeyMAC] == mac {
			return g.ID
		}
	}
	return ""
}

// maxFile bounds a file read back from the branch.
const maxFile = 64 << 10

func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

func read(fsys fs.FS, name string) ([]byte, bool) {
	if fsys == nil {
		return nil, false
	}
	if st, err := fs.Stat(fsys, name); err != nil || !st.Mode().IsRegular() || st.Size() > maxFile {
		return nil, false
	}
	data, err := fs.ReadFile(fsys, name)
	return data, err == nil
}

// kept lists the MACs whose discovery files, in the form this profile
// setting writes, the branch holds, sorted.
func kept(branch fs.FS, dir, profile string) []string {
	if branch == nil {
		return nil
	}
	es, err := fs.ReadDir(branch, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil
	}
	tail := ""
	if profile == "" {
		tail = DisabledSuffix
	}
	var macs []string
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), "discovered-")
		rest, ok2 := strings.CutSuffix(rest, ".yaml"+tail)
		if !ok || !ok2 || !e.Type().IsRegular() {
			continue
		}
		mac, err := schema.NormalizeValue(schema.KeyMAC, rest)
		if err != nil || FileName(mac)+tail != e.Name() {
			continue // not a name this package writes
		}
		macs = append(macs, mac)
	}
	slices.Sort(macs)
	return macs
}

func message(p *Plan) string {
	var b strings.Builder
	n := len(p.Files)
	fmt.Fprintf(&b, "groups: %d discovered machine", n)
	if n != 1 {
		b.WriteString("s")
	}
	b.WriteString("\n\nPXE clients that no group matched, proposed by pxeops discover, one group file each")
	if p.Settings.Profile != "" {
		fmt.Fprintf(&b, " booting profile %s.\n\n", p.Settings.Profile)
	} else {
		b.WriteString(", disabled (no discovery.profile in pxeops.yaml):\nname a profile in each and drop the .disabled suffix to boot it.\n\n")
	}
	for _, f := range p.Files {
		fmt.Fprintf(&b, "%s\n", f.Path)
	}
	return b.String()
}
