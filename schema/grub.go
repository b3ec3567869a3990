package schema

import (
	"errors"
	"fmt"
	"strings"
)

// ErrGRUBArg means a kernel argument cannot be given to GRUB so that the
// kernel sees what it sees under iPXE.
var ErrGRUBArg = errors.New("kernel argument cannot go through GRUB unchanged")

// CheckGRUBArg reports, wrapping ErrGRUBArg, what in kernel argument arg
// GRUB would change: GRUB's linux command writes a backslash before each
// '"', '\” and '\\' on the kernel command line, and leaves ${...} (an
// iPXE setting) unexpanded. Newlines and NULs are refused for every
// loader before this runs.
func CheckGRUBArg(arg string) error {
	if strings.Contains(arg, "${") {
		return fmt.Errorf("%w: it contains ${...}, and GRUB does not expand iPXE settings: the kernel would get it literally", ErrGRUBArg)
	}
	if i := strings.IndexAny(arg, `"'\`); i >= 0 {
		name := map[byte]string{'"': "a double quote", '\'': "a single quote", '\\': "a backslash"}[arg[i]]
		return fmt.Errorf("%w: it contains %s, which GRUB's linux command escapes with a backslash on the kernel command line, so the kernel would see something else than under iPXE", ErrGRUBArg, name)
	}
	return nil
}

var loaders = map[string]bool{LoaderIPXE: true, LoaderGRUB: true}

// checkLoader reports an unknown loader at path of m.
func (v checker) checkLoader(m *meta, loader string) {
	if loader != "" && !loaders[loader] {
		v.errorf(m, "loader", "unknown loader %q: use ipxe or grub%s", loader, didYouMean(loader, loaders))
	}
}

// grub checks what loader grub needs of a profile that some machine
// boots with GRUB: via says why, for a profile whose own loader is not
// grub (the group that overrides it). Templated arguments are checked
// when check runs them (execProfile).
func (v *validator) grub(p *Profile, via string) {
	m := &p.meta
	need := "loader grub fetches kernel and initrds over TFTP (Debian's signed GRUB has no http module), so they must be paths under /assets/" + via
	local := func(u string) bool { return strings.HasPrefix(u, "/assets/") }
	if im := p.image; im != nil {
		if !local(im.Kernel.URL) {
			v.errorf(m, "image", "image %s's kernel %s is not a path under /assets/: %s", im.id, im.Kernel.URL, need)
		}
		for i, f := range im.Initrd {
			if !local(f.URL) {
				v.errorf(m, "image", "image %s's initrd[%d] %s is not a path under /assets/: %s", im.id, i, f.URL, need)
			}
		}
	} else if p.Kernel != "" {
		if !local(p.Kernel) {
			v.errorf(m, "kernel", "kernel %s is not a path under /assets/: %s", p.Kernel, need)
		}
		for i, u := range p.Initrd {
			if !local(u) {
				v.errorf(m, fmt.Sprintf("initrd[%d]", i), "initrd %s is not a path under /assets/: %s", u, need)
			}
		}
	}
	for i, a := range p.Args {
		if p.args != nil && p.args[i] != nil {
			continue
		}
		if err := CheckGRUBArg(a); err != nil {
			v.errorf(m, fmt.Sprintf("args[%d]", i), "%v (loader grub%s)", err, via)
		}
	}
}

// grubProfiles runs grub's checks on every profile some machine boots
// with GRUB: by its own loader, or a group's.
func (v *validator) grubProfiles() {
	via := map[string]string{} // profile id → the first group making it grub
	for _, id := range v.t.groupIDs {
		g := v.t.Groups[id]
		if p := v.t.Profiles[g.Profile]; p != nil && g.Loader == LoaderGRUB && p.Loader != LoaderGRUB && via[p.id] == "" {
			via[p.id] = id
		}
	}
	for _, id := range v.t.profileIDs {
		p := v.t.Profiles[id]
		switch {
		case p.Loader == LoaderGRUB:
			v.grub(p, "")
		case via[id] != "":
			v.grub(p, fmt.Sprintf("; groups/%s.yaml boots this profile with loader: grub", via[id]))
		}
	}
}
