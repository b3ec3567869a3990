package render

import "github.com/pxeops/pxeops/schema"

// UsesSecrets reports whether the profile's config reads a secret.
func (p *Profile) UsesSecrets() bool { return len(p.Secrets) > 0 }

// UsesSecrets reports whether any profile's config reads a secret.
func (s *Snapshot) UsesSecrets() bool {
	for _, p := range s.profiles {
		if p.UsesSecrets() {
			return true
		}
	}
	return false
}

// Groups lists the snapshot's groups in precedence order (most selector
// keys first), for checks over the whole fleet.
func (s *Snapshot) Groups() []*Group { return s.groups }

// SelectsMAC reports whether the group's selector names a MAC: only that
// machine can match it, whereas its other keys are what a request claims.
func (g *Group) SelectsMAC() bool { return g.Source.Selector[schema.KeyMAC] != "" }
