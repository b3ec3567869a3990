package schema

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

var (
	sha256Pattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]*$`)
)

// checker reports what is wrong with one object on its own. These checks
// run right after decoding, normalise values in place, and are cached
// with the file; what needs other files is validate's.
type checker struct{ diags *Diagnostics }

// errorf reports a problem with the value at path, unless the decoder
// already rejected that value.
func (c checker) errorf(m *meta, path, format string, args ...any) {
	if m.bad[path] {
		return
	}
	c.diags.errorf(m.Pos(path), format, args...)
}

// required reports a missing field: at the mapping that lacks it (the
// start of the file for a top-level field), at the value when it is
// written but empty.
func (c checker) required(m *meta, path, hint string) {
	if m.bad[""] {
		return // the file is not a mapping at all; that error says enough
	}
	if !m.has(path) {
		parent := path
		for parent != "" && !m.has(parent) {
			parent = parent[:max(strings.LastIndexAny(parent, ".["), 0)]
		}
		c.diags.errorf(m.Pos(parent), "%s is required: %s", path, hint)
	} else {
		c.errorf(m, path, "%s is empty: %s", path, hint)
	}
}

func (im *Image) check(v checker) {
	m := &im.meta
	switch im.OS {
	case "flatcar", "coreos", "linux":
	case "":
		v.required(m, "os", "flatcar, coreos or linux")
	default:
		v.errorf(m, "os", "unknown os %q: use flatcar, coreos or linux", im.OS)
	}
	switch im.Arch {
	case "amd64", "arm64":
	default:
		v.errorf(m, "arch", "unknown arch %q: use amd64 or arm64", im.Arch)
	}
	if im.Version == "" {
		v.required(m, "version", "the release version, e.g. version: 4081.2.0")
	} else if !versionPattern.MatchString(im.Version) {
		v.errorf(m, "version", "invalid version %q: use letters, digits, '.', '_', '+' and '-'", im.Version)
	}
	switch im.Update {
	case "":
	case "omaha":
		if im.Channel == "" {
			v.errorf(m, "update", "update: omaha needs a channel (e.g. channel: stable)")
		}
		if im.OS == "linux" {
			v.errorf(m, "update", "update: omaha works for os flatcar or coreos, not %q", im.OS)
		}
	default:
		v.errorf(m, "update", "unknown update %q: use omaha, or remove the field to pin by hand", im.Update)
	}
	if im.Channel != "" && !versionPattern.MatchString(im.Channel) {
		v.errorf(m, "channel", "invalid channel %q", im.Channel)
	}
	if !m.has("kernel") || m.bad["kernel"] {
		v.required(m, "kernel", "kernel: {url: ..., sha256: ...}")
	} else {
		v.file(m, "kernel", &im.Kernel)
	}
	if len(im.Initrd) == 0 {
		v.required(m, "initrd", "a list of {url: ..., sha256: ...}")
	}
	for i := range im.Initrd {
		v.file(m, fmt.Sprintf("initrd[%d]", i), &im.Initrd[i])
	}
	if im.Rollout != nil {
		im.Rollout.check(v, m)
	}
}

func (v checker) file(m *meta, path string, f *File) {
	if f.URL == "" {
		v.required(m, path+".url", "http(s)://... or a path under /assets/")
	} else if err := checkBootURL(f.URL); err != nil {
		v.errorf(m, path+".url", "%v", err)
	}
	if f.SHA256 != "" {
		f.SHA256 = strings.ToLower(f.SHA256) // normalised before the object is shared
		if !sha256Pattern.MatchString(f.SHA256) {
			v.errorf(m, path+".sha256", "invalid sha256: want 64 hex digits (sha256sum prints them)")
		}
	}
}

// checkBootURL accepts what iPXE can fetch for us: absolute http(s) URLs
// and clean paths under the local asset store.
func checkBootURL(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("invalid URL %q: no spaces or control characters", s)
	}
	if strings.Contains(s, "${") {
		return fmt.Errorf("invalid URL %q: no ${...} expansions", s)
	}
	if strings.HasPrefix(s, "/") {
		if !strings.HasPrefix(s, "/assets/") || path.Clean(s) != s || s == "/assets/" {
			return fmt.Errorf("invalid path %q: local files are clean paths under /assets/, e.g. /assets/flatcar/vmlinuz", s)
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid URL %q: want http(s)://host/path or a path under /assets/", s)
	}
	return nil
}

func (p *Profile) check(v checker) {
	m := &p.meta
	switch p.Boot {
	case "", BootNetwork:
	case BootLocal:
		p.checkLocal(v)
		v.checkLoader(m, p.Loader)
		return
	default:
		v.errorf(m, "boot", "unknown boot %q: use network or local", p.Boot)
	}
	switch {
	case p.Image != "" && p.Kernel != "":
		v.errorf(m, "kernel", "use either image or kernel, not both")
	case p.Image != "":
		if len(p.Initrd) > 0 {
			v.errorf(m, "initrd", "initrd comes from the image; remove it or use kernel instead of image")
		}
	case p.Kernel != "":
		if err := checkBootURL(p.Kernel); err != nil {
			v.errorf(m, "kernel", "%v", err)
		}
		for i, u := range p.Initrd {
			if err := checkBootURL(u); err != nil {
				v.errorf(m, fmt.Sprintf("initrd[%d]", i), "%v", err)
			}
		}
	case !m.bad["image"] && !m.bad["kernel"]:
		v.errorf(m, "", "a profile needs image (an images/ id) or kernel (a URL)")
	}
	v.checkLoader(m, p.Loader)
	p.args = make([]*runner, len(p.Args))
	for i, a := range p.Args {
		path := fmt.Sprintf("args[%d]", i)
		if strings.ContainsAny(a, "\n\r\x00") {
			v.errorf(m, path, "kernel argument contains a newline or NUL; write one argument per list item")
			continue
		}
		if a == "" {
			v.errorf(m, path, "empty kernel argument; remove the item")
			continue
		}
		if !strings.Contains(a, "{{") {
			continue
		}
		tmpl, err := parseTemplate(path, a)
		if err != nil {
			v.diags.errorf(m.Pos(path), "template: %s", templateErrMsg(err))
			continue
		}
		if len(tmpl.secrets) > 0 {
			v.errorf(m, path, "secret is for configs only: kernel arguments go in the iPXE script and every process on the machine reads them in /proc/cmdline")
			continue
		}
		p.args[i] = tmpl
	}
	if c := p.Config; c != nil {
		if c.Template == "" {
			v.required(m, "config.template", "a file name under templates/")
		}
		switch c.Type {
		case ConfigIgnition, ConfigCloudConfig, ConfigRaw:
		case ConfigButane:
			if strings.HasSuffix(c.Template, ".json") || strings.HasSuffix(c.Template, ".ign") {
				v.errorf(m, "config.template", "a butane template is YAML, and %s is named as JSON; for an Ignition config use type: ignition", c.Template)
			}
		default:
			v.errorf(m, "config.type", "unknown config type %q: use ignition, butane, cloud-config or raw", c.Type)
		}
	}
}

func (g *Group) check(v checker) {
	m := &g.meta
	if g.Profile == "" {
		v.required(m, "profile", "the id of a file in profiles/")
	}
	// A new map: the decoded one may be shared with a cached copy.
	norm := make(map[string]string, len(g.Selector))
	for _, k := range slices.Sorted(maps.Keys(g.Selector)) {
		norm[k] = g.Selector[k]
		path := "selector." + k
		if !knownKey(k) {
			if err := CheckLabelKey(k); err != nil {
				v.diags.errorf(m.Pos(path), "%v", err)
				continue
			}
		}
		value, err := NormalizeValue(k, g.Selector[k])
		if err != nil {
			v.diags.errorf(m.Pos(path), "%v", err)
			continue
		}
		norm[k] = value
	}
	if g.Selector != nil {
		g.Selector = norm
	}
	v.checkLoader(m, g.Loader)
	g.keys = slices.Sorted(maps.Keys(g.Selector))
	g.selKey = selectorString(g.Selector)
}

// checkLocal reports what a profile that boots the local disk cannot
// have: everything it would boot over the network.
func (p *Profile) checkLocal(v checker) {
	m := &p.meta
	for _, f := range []struct {
		path string
		set  bool
	}{
		{"image", p.Image != ""}, {"kernel", p.Kernel != ""}, {"initrd", len(p.Initrd) > 0},
		{"args", len(p.Args) > 0}, {"config", p.Config != nil},
	} {
		if f.set || m.has(f.path) {
			v.errorf(m, f.path, "boot: local boots the machine's disk: remove %s (it is for boot: network)", f.path)
		}
	}
}
