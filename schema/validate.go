package schema

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

var (
	sha256Pattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]*$`)
)

// SampleServerURL is the server URL templates see when check runs them.
const SampleServerURL = "http://pxeops.example:8080"

func validate(t *Tree, diags *Diagnostics) {
	v := validator{t: t, diags: diags}
	for _, id := range slices.Sorted(maps.Keys(t.Images)) {
		v.image(t.Images[id])
	}
	for _, id := range slices.Sorted(maps.Keys(t.Profiles)) {
		v.profile(t.Profiles[id])
	}
	for _, id := range slices.Sorted(maps.Keys(t.Groups)) {
		v.group(t.Groups[id])
	}
	v.selectors()
	v.settings(&t.Settings)
	v.runTemplates()
}

type validator struct {
	t     *Tree
	diags *Diagnostics
}

// errorf reports a problem with the value at path, unless the decoder
// already rejected that value.
func (v *validator) errorf(m *meta, path, format string, args ...any) {
	if m.bad[path] {
		return
	}
	v.diags.errorf(m.Pos(path), format, args...)
}

// required reports a missing field: at the start of the file when it is
// absent, at the value when it is written but empty.
func (v *validator) required(m *meta, path, hint string) {
	if m.bad[""] {
		return // the file is not a mapping at all; that error says enough
	}
	if !m.has(path) {
		v.diags.errorf(m.Pos(""), "%s is required: %s", path, hint)
	} else {
		v.errorf(m, path, "%s is empty: %s", path, hint)
	}
}

func (v *validator) image(im *Image) {
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
}

func (v *validator) file(m *meta, path string, f *File) {
	if f.URL == "" {
		v.required(m, path+".url", "http(s)://... or a path under /assets/")
	} else if err := checkBootURL(f.URL); err != nil {
		v.errorf(m, path+".url", "%v", err)
	}
	if f.SHA256 != "" {
		f.SHA256 = strings.ToLower(f.SHA256)
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

func (v *validator) profile(p *Profile) {
	m := &p.meta
	switch {
	case p.Image != "" && p.Kernel != "":
		v.errorf(m, "kernel", "use either image or kernel, not both")
	case p.Image != "":
		p.image = v.t.Images[p.Image]
		if p.image == nil {
			v.errorf(m, "image", "image %q does not exist: no images/%s.yaml%s", p.Image, p.Image, didYouMean(p.Image, v.t.Images))
		}
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
	p.args = make([]*template.Template, len(p.Args))
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
		p.args[i] = tmpl
	}
	if c := p.Config; c != nil {
		if c.Template == "" {
			v.required(m, "config.template", "a file name under templates/")
		} else if p.config = v.t.Templates[c.Template]; p.config == nil {
			v.errorf(m, "config.template", "template %q does not exist: no templates/%s%s", c.Template, c.Template, didYouMean(c.Template, v.t.Templates))
		}
		switch c.Type {
		case ConfigIgnition, ConfigCloudConfig, ConfigRaw:
		default:
			v.errorf(m, "config.type", "unknown config type %q: use ignition, cloud-config or raw", c.Type)
		}
	}
}

func (v *validator) group(g *Group) {
	m := &g.meta
	if g.Profile == "" {
		v.required(m, "profile", "the id of a file in profiles/")
	} else if v.t.Profiles[g.Profile] == nil {
		v.errorf(m, "profile", "profile %q does not exist: no profiles/%s.yaml%s", g.Profile, g.Profile, didYouMean(g.Profile, v.t.Profiles))
	}
	for _, k := range slices.Sorted(maps.Keys(g.Selector)) {
		path := "selector." + k
		if !knownKey(k) {
			if err := CheckLabelKey(k); err != nil {
				v.diags.errorf(m.Pos(path), "%v", err)
				continue
			}
		}
		norm, err := NormalizeValue(k, g.Selector[k])
		if err != nil {
			v.diags.errorf(m.Pos(path), "%v", err)
			continue
		}
		g.Selector[k] = norm
	}
}

// selectors checks the groups against each other: one default at most,
// no two identical selectors, and a warning where two equally specific
// groups could both match one machine.
func (v *validator) selectors() {
	ids := slices.Sorted(maps.Keys(v.t.Groups))
	var defaultID string
	seen := map[string]string{} // canonical selector → first group id
	bySet := map[string][]*Group{}
	for _, id := range ids {
		g := v.t.Groups[id]
		if len(g.Selector) == 0 {
			if defaultID != "" {
				v.errorf(&g.meta, "", "second default group (no selector); groups/%s.yaml is already the default, give one of them a selector", defaultID)
			} else {
				defaultID = id
			}
			continue
		}
		key := selectorString(g.Selector)
		if first, dup := seen[key]; dup {
			v.errorf(&g.meta, "selector", "same selector as groups/%s.yaml (%s); a machine cannot tell them apart, merge them or change one", first, key)
			continue
		}
		seen[key] = id
		set := strings.Join(slices.Sorted(maps.Keys(g.Selector)), ",")
		bySet[set] = append(bySet[set], g)
	}
	v.overlaps(bySet)
}

func selectorString(sel map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(sel)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + sel[k])
	}
	return b.String()
}

const maxOverlapWarnings = 10

// overlaps warns about pairs of groups with the same number of selector
// keys that do not contradict each other on any key they share. Groups
// with the same key set always differ somewhere (identical ones are
// errors), so only distinct key sets of one size are compared, through a
// hash of the values on their shared keys: linear in the number of groups.
func (v *validator) overlaps(bySet map[string][]*Group) {
	sets := slices.Sorted(maps.Keys(bySet))
	for i, a := range sets {
		ka := strings.Split(a, ",")
		for _, b := range sets[i+1:] {
			kb := strings.Split(b, ",")
			if len(ka) != len(kb) {
				continue
			}
			var shared []string
			for _, k := range ka {
				if slices.Contains(kb, k) {
					shared = append(shared, k)
				}
			}
			proj := func(g *Group) string {
				var s strings.Builder
				for _, k := range shared {
					s.WriteString(g.Selector[k] + "\x00")
				}
				return s.String()
			}
			index := map[string][]*Group{}
			for _, g := range bySet[a] {
				index[proj(g)] = append(index[proj(g)], g)
			}
			n := 0
			for _, g := range bySet[b] {
				for _, h := range index[proj(g)] {
					if n++; n <= maxOverlapWarnings {
						v.overlapWarning(g, h)
					}
				}
			}
			if n > maxOverlapWarnings {
				v.diags.warnf(Pos{File: "groups"}, "%d more pairs of groups with selectors on [%s] and [%s] can match the same machine", n-maxOverlapWarnings, a, b)
			}
		}
	}
}

func (v *validator) overlapWarning(g, h *Group) {
	first, second := g, h
	if second.id < first.id {
		first, second = second, first
	}
	v.diags.warnf(second.Pos("selector"), "a machine with %s and %s matches both this group and groups/%s.yaml, equally specific (%s); %s wins as its id sorts first. Add a key to the one that should win",
		selectorString(first.Selector), selectorString(second.Selector), first.id, plural(len(first.Selector), "key"), first.id)
}

func (v *validator) settings(s *Settings) {
	m, o := &s.meta, &s.Omaha
	if u, err := url.Parse(o.Server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(m, "omaha.server", "invalid omaha.server %q: want an http(s):// URL", o.Server)
	}
	if time.Duration(o.Interval) < time.Minute {
		v.errorf(m, "omaha.interval", "omaha.interval %s is too short: at least 1m, so the update service is not hammered", time.Duration(o.Interval))
	}
	sample := MirrorData{Channel: "stable", Arch: "amd64", Board: "amd64-usr", Version: "4081.2.0", Image: "flatcar-stable"}
	for _, f := range []struct{ path, text string }{{"omaha.mirror", o.Mirror}, {"omaha.branch", o.Branch}} {
		tmpl, err := parseTemplate(f.path, f.text)
		if err == nil {
			err = tmpl.Execute(io.Discard, sample)
		}
		if err != nil {
			v.errorf(m, f.path, "template: %s; data: .Channel .Arch .Board .Version .Image", templateErrMsg(err))
		}
	}
	for _, f := range []struct{ path, name string }{{"omaha.files.kernel", o.Files.Kernel}, {"omaha.files.initrd", o.Files.Initrd}} {
		if strings.ContainsAny(f.name, "/\\") || strings.ContainsFunc(f.name, func(r rune) bool { return r <= ' ' }) {
			v.errorf(m, f.path, "invalid file name %q: a plain name under the mirror URL", f.name)
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func didYouMean[T any](id string, objs map[string]T) string {
	best, bestDist := "", 3
	for _, other := range slices.Sorted(maps.Keys(objs)) {
		if d := editDistance(id, other); d < bestDist {
			best, bestDist = other, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// Data is the template data of a machine in group g booting profile p,
// without the machine's own values.
func (g *Group) Data(p *Profile, serverURL string) TemplateData {
	d := TemplateData{
		Metadata:  g.Metadata,
		Group:     g.id,
		Profile:   p.id,
		ServerURL: serverURL,
	}
	if d.Metadata == nil {
		d.Metadata = map[string]any{}
	}
	if im := p.image; im != nil {
		d.Image = ImageData{ID: im.id, OS: im.OS, Channel: im.Channel, Arch: im.Arch, Version: im.Version}
	}
	return d
}

// sampleData is the data check runs templates with: the group's own
// selector values where it has them, plausible values elsewhere.
func sampleData(g *Group, p *Profile) *TemplateData {
	d := g.Data(p, SampleServerURL)
	d.Machine = Machine{MAC: "52:54:00:12:34:56", UUID: "4c4c4544-0042-3510-8050-b4c04f4d3232", Hostname: "sample-host", Serial: "SAMPLE-SERIAL", Arch: "x86_64", Labels: map[string]string{}}
	for k, val := range g.Selector {
		d.Machine.set(k, val)
	}
	return &d
}

// runTemplates executes every argument and config template once per group
// that uses it, so a missing metadata key fails check instead of a boot.
// Profiles and templates no group uses run once with sample data; their
// failures are warnings, as nothing boots them yet.
func (v *validator) runTemplates() {
	usedProfiles, usedTemplates, reported := map[string]bool{}, map[string]bool{}, map[string]bool{}
	ids := slices.Sorted(maps.Keys(v.t.Groups))
	// Groups run on all cores; each writes only its own slot.
	type finding struct {
		at  Pos
		msg string
		bug bool // a fault of the template itself, whatever the data
	}
	findings := make([][]finding, len(ids))
	forEach(len(ids), func(i int) {
		g := v.t.Groups[ids[i]]
		p := v.t.Profiles[g.Profile]
		if p == nil {
			return
		}
		at := g.Pos("profile")
		if g.has("metadata") {
			at = g.Pos("metadata")
		}
		v.execProfile(p, sampleData(g, p), func(where Pos, msg string) {
			if strings.Contains(msg, "can't evaluate field") {
				findings[i] = append(findings[i], finding{at: where, msg: msg, bug: true})
			} else {
				findings[i] = append(findings[i], finding{at: at, msg: fmt.Sprintf("%s: %s (run for this group)", where, msg)})
			}
		})
	})
	for i, id := range ids {
		if p := v.t.Profiles[v.t.Groups[id].Profile]; p != nil {
			usedProfiles[p.id] = true
			if p.config != nil {
				usedTemplates[p.config.id] = true
			}
		}
		for _, f := range findings[i] {
			switch {
			case !f.bug:
				v.diags.errorf(f.at, "%s", f.msg)
			case !reported[f.at.String()+f.msg]:
				// No data fixes a misspelt field: reported once, where the
				// template is written.
				reported[f.at.String()+f.msg] = true
				v.diags.errorf(f.at, "%s; fields: .MAC .UUID .Hostname .Serial .Arch .Labels .Metadata .Group .Profile .Image .ServerURL", f.msg)
			}
		}
	}
	unused := &Group{meta: meta{id: "sample"}}
	for _, id := range slices.Sorted(maps.Keys(v.t.Profiles)) {
		p := v.t.Profiles[id]
		if usedProfiles[id] {
			continue
		}
		v.diags.warnf(p.Pos(""), "profile not used by any group")
		if p.config != nil {
			usedTemplates[p.config.id] = true
		}
		v.execProfile(p, sampleData(unused, p), func(where Pos, msg string) {
			v.diags.warnf(p.Pos(""), "%s: %s (run with sample data)", where, msg)
		})
	}
	for _, id := range slices.Sorted(maps.Keys(v.t.Templates)) {
		if usedTemplates[id] {
			continue
		}
		tm := v.t.Templates[id]
		v.diags.warnf(Pos{File: tm.file}, "template not used by any profile")
		if tm.tmpl == nil {
			continue
		}
		if err := tm.tmpl.Execute(io.Discard, sampleData(unused, &Profile{})); err != nil {
			v.diags.warnf(templateErrPos(tm.file, 1, 1, err), "%s (run with sample data)", templateErrMsg(err))
		}
	}
}

func (v *validator) execProfile(p *Profile, data *TemplateData, report func(where Pos, msg string)) {
	var buf strings.Builder
	for i := range p.Args {
		if p.args == nil || p.args[i] == nil {
			continue
		}
		buf.Reset()
		where := p.Pos(fmt.Sprintf("args[%d]", i))
		if err := p.WriteArg(&buf, i, data); err != nil {
			report(where, templateErrMsg(err))
		} else if strings.ContainsAny(buf.String(), "\n\r\x00") {
			report(where, "renders a newline or NUL into a kernel argument")
		} else if buf.Len() == 0 {
			report(where, "renders an empty kernel argument")
		}
	}
	if p.config == nil || p.config.tmpl == nil {
		return
	}
	if err := p.WriteConfig(io.Discard, data); err != nil {
		where := Pos{File: p.config.file}
		if _, ok := errors.AsType[template.ExecError](err); ok {
			where = templateErrPos(p.config.file, 1, 1, err)
		}
		report(where, templateErrMsg(err))
	}
}
