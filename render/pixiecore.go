package render

import (
	"encoding/json"
	"io"

	"github.com/pxeops/pxeops/schema"
)

// pixiecoreBoot is the Pixiecore API's answer.
type pixiecoreBoot struct {
	Kernel  string   `json:"kernel"`
	Initrd  []string `json:"initrd,omitempty"`
	Cmdline string   `json:"cmdline,omitempty"`
}

// WritePixiecore writes the Pixiecore API's answer (JSON, one line) that
// boots machine m as group g. The API asks by MAC alone, so m should hold
// only the MAC. edit, when set, rewrites the command line first (the
// access rule adds its token to the config URLs). Pixiecore runs the
// command line through text/template, so it is written escaped for that:
// what the machine gets is the command line pxeops rendered.
func (s *Snapshot) WritePixiecore(w io.Writer, g *Group, m *Machine, edit func(cmdline string) string) error {
	if g.Profile.Local() {
		return ErrLocalBoot
	}
	cmdline, err := s.Cmdline(g, m)
	if err != nil {
		return err
	}
	if edit != nil {
		cmdline = edit(cmdline)
	}
	f := g.Profile.Boot(m.MAC)
	b := pixiecoreBoot{Kernel: f.Kernel, Cmdline: schema.EscapeTemplate(cmdline)}
	for _, i := range f.Initrds {
		b.Initrd = append(b.Initrd, i.URL)
	}
	return json.NewEncoder(w).Encode(b)
}
