package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pxeops/pxeops/schema"
)

// Lookup returns the group machine m gets, or nil when none matches and
// there is no default. The matching group with the most selector keys
// wins; among equals, the lowest id. It touches at most four hash buckets
// and the groups that have none of mac, uuid, serial and hostname, and
// does not allocate.
func (s *Snapshot) Lookup(m *schema.Machine) *Group {
	var best *Group
	consider := func(gs []*Group) {
		for _, g := range gs {
			if (best == nil || g.rank < best.rank) && g.matches(m) {
				best = g
			}
		}
	}
	if m.MAC != "" {
		consider(s.byMAC[m.MAC])
	}
	if m.UUID != "" {
		consider(s.byUUID[m.UUID])
	}
	if m.Serial != "" {
		consider(s.bySerial[m.Serial])
	}
	if m.Hostname != "" {
		consider(s.byHostname[m.Hostname])
	}
	for _, g := range s.scan {
		if best != nil && g.rank > best.rank {
			break
		}
		if g.matches(m) {
			return g
		}
	}
	return best
}

// MayServe reports whether some group could match a machine of which
// only the MAC and possibly the arch ("" when unknown) are known yet, as
// at its first DHCP request: hostnames, serials and labels come later
// with iPXE. A machine no group could match is left to other servers.
func (s *Snapshot) MayServe(mac, arch string) bool {
	for _, g := range s.byMAC[mac] {
		if a := g.Source.Selector[schema.KeyArch]; a == "" || arch == "" || a == arch {
			return true
		}
	}
	if arch == "" {
		return s.macFreeAnyArch || len(s.macFreeArches) > 0
	}
	return s.macFreeAnyArch || s.macFreeArches[arch]
}

func (g *Group) matches(m *schema.Machine) bool {
	for _, c := range g.sel {
		if m.Value(c.key) != c.value {
			return false
		}
	}
	return true
}

// Data is the template data for machine m in group g. A machine on the
// side of the image's rollout sees the rollout's version as
// .Image.Version: the version it boots.
func (g *Group) Data(m *schema.Machine) *schema.TemplateData {
	return g.dataFor(m, g.Profile.Boot(m.MAC))
}

// dataFor is Data for a machine that boots f.
func (g *Group) dataFor(m *schema.Machine, f *BootFiles) *schema.TemplateData {
	d := g.data
	d.Machine = *m
	if f.OnRollout {
		d.Image.Version = f.Version
	}
	return &d
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ErrUnsafeArg means a kernel argument rendered into something that could
// break out of the script line; the script is not served.
var ErrUnsafeArg = errors.New("kernel argument renders a newline or NUL")

// WriteScript writes the iPXE script that boots machine m as group g.
// The script is built in full before anything is written, so a failing
// template never leaves half a script on the wire.
func (s *Snapshot) WriteScript(w io.Writer, g *Group, m *schema.Machine) error {
	f := g.Profile.Boot(m.MAC)
	cache := &g.script[f.side()]
	if script := cache.Load(); script != nil {
		_, err := w.Write(*script)
		return err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	buf.WriteString(f.head)
	if err := writeArgs(buf, g, m, f, true, nil); err != nil {
		return err
	}
	buf.WriteString(f.tail)
	if g.sameScript {
		script := bytes.Clone(buf.Bytes())
		cache.Store(&script)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Cmdline returns the kernel arguments machine m gets as group g, without
// the initrd= names the iPXE script adds: what the Pixiecore API serves.
func (s *Snapshot) Cmdline(g *Group, m *schema.Machine) (string, error) {
	var b bytes.Buffer
	if err := writeArgs(&b, g, m, g.Profile.Boot(m.MAC), false, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeArgs renders the profile's kernel arguments for a machine that
// boots f, separated by spaces
// (with a leading one when lead is set), refusing any that rendered a
// line break or NUL, or that check, when set, refuses (what the loader
// cannot pass on unchanged).
//
// Templates run within the budgets check ran them with; boot requests
// do not cancel them (a run is bounded in time anyway).
func writeArgs(buf *bytes.Buffer, g *Group, m *schema.Machine, f *BootFiles, lead bool, check func(arg []byte) error) error {
	p := g.Profile
	begin := buf.Len()
	if lead {
		begin++ // the space before the first argument
	}
	var data *schema.TemplateData
	for i := range p.Source.Args {
		if lead || i > 0 {
			buf.WriteByte(' ')
		}
		if data == nil && !p.Source.ArgIsStatic(i) {
			data = g.dataFor(m, f)
		}
		start := buf.Len()
		if err := p.Source.WriteArg(context.Background(), buf, i, data); err != nil {
			return fmt.Errorf("profile %s: args[%d]: %w", p.ID, i, err)
		}
		if bytes.ContainsAny(buf.Bytes()[start:], "\n\r\x00") {
			return fmt.Errorf("profile %s: args[%d]: %w", p.ID, i, ErrUnsafeArg)
		}
		if check != nil {
			if err := check(buf.Bytes()[start:]); err != nil {
				return fmt.Errorf("profile %s: args[%d]: %w", p.ID, i, err)
			}
		}
		if n := buf.Len() - begin; n > schema.MaxCmdlineSize {
			return fmt.Errorf("profile %s: the kernel command line renders to more than %d bytes", p.ID, schema.MaxCmdlineSize)
		}
	}
	return nil
}

// ErrNoConfig means the machine's profile serves no config.
var ErrNoConfig = errors.New("profile has no config")

// WriteConfig writes the config machine m gets as group g.
func (s *Snapshot) WriteConfig(w io.Writer, g *Group, m *schema.Machine) error {
	if g.Profile.Source.Config == nil {
		return ErrNoConfig
	}
	f := g.Profile.Boot(m.MAC)
	cache := &g.config[f.side()]
	if config := cache.Load(); config != nil {
		_, err := w.Write(*config)
		return err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := g.Profile.Source.WriteConfig(context.Background(), buf, g.dataFor(m, f)); err != nil {
		return fmt.Errorf("profile %s: config %s: %w", g.Profile.ID, g.Profile.Source.Config.Template, err)
	}
	if g.sameConfig {
		config := bytes.Clone(buf.Bytes())
		cache.Store(&config)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Candidate is one group as Explain saw it.
type Candidate struct {
	Group    *Group
	Matched  bool
	Mismatch string // the first selector key whose value differs
}

// Explain lists the groups that match m, best first, then the groups that
// agree with m on some key but not all: what `pxeops render` shows. It is
// for people, not for the boot path; it reads every group.
func (s *Snapshot) Explain(m *schema.Machine) []Candidate {
	var matched, near []Candidate
	for _, g := range s.groups {
		agree, first := 0, ""
		for _, c := range g.sel {
			if m.Value(c.key) == c.value {
				agree++
			} else if first == "" {
				first = c.key
			}
		}
		switch {
		case first == "":
			matched = append(matched, Candidate{Group: g, Matched: true})
		case agree > 0:
			near = append(near, Candidate{Group: g, Mismatch: first})
		}
	}
	return append(matched, near...)
}
