package render

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
