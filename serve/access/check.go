package access

// Group is what CheckTree needs of one group of a tree.
type Group struct {
	ID string
	// ByMAC says the selector has a mac: only that machine matches it.
	ByMAC bool
	// Secret says its profile's script or config uses a secret.
	Secret bool
}

// Problem is a group whose secret mode would give away.
type Problem struct {
	Group   string
	Message string
}

// CheckTree lists the groups whose secret would be served to someone
// other than the machine it is for under mode: any group under Open,
// and under Auto and Machine a group not selected by MAC, since its
// other keys (uuid, hostname, serial, arch, labels, or none for the
// default group) are what a request claims, not what it proves. A tree
// with problems is not served.
func CheckTree(mode Mode, groups []Group) []Problem {
	var ps []Problem
	for _, g := range groups {
		switch {
		case !g.Secret:
		case mode == Open:
			ps = append(ps, Problem{g.ID, "its profile uses a secret, and access mode open serves it to anyone who asks; use mode auto or machine"})
		case !g.ByMAC:
			ps = append(ps, Problem{g.ID, "its profile uses a secret, but its selector has no mac: any host can claim the other keys and get it; select this group by mac"})
		}
	}
	return ps
}
