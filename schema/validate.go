package schema

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"
)

// SampleServerURL is the server URL templates see when check runs them.
const SampleServerURL = "http://pxeops.example:8080"

// validate checks what spans files: references, selectors against each
// other, settings, and every template run with every group's data.
func validate(ctx context.Context, t *Tree, diags *Diagnostics, cache *Cache) map[runKey][]finding {
	v := validator{checker: checker{diags}, ctx: ctx, t: t, cache: cache, runSecrets: t.secrets.forCheck()}
	for _, id := range t.profileIDs {
		v.references(t.Profiles[id])
	}
	for _, id := range t.groupIDs {
		g := t.Groups[id]
		if g.Profile != "" && t.Profiles[g.Profile] == nil {
			v.errorf(&g.meta, "profile", "profile %q does not exist: no profiles/%s.yaml%s", g.Profile, g.Profile, didYouMean(g.Profile, t.Profiles))
		}
	}
	v.selectors()
	v.grubProfiles()
	v.settings(&t.Settings)
	v.fleet()
	v.checkSecretRefs()
	return v.runTemplates()
}

type validator struct {
	checker
	ctx   context.Context
	t     *Tree
	cache *Cache
	// runSecrets are what check's runs read: the tree's, with a missing
	// name rendered as its placeholder, since checkSecretRefs reports it
	// already, where it is written.
	runSecrets *Secrets
}

// references resolves a profile's image and config template.
func (v *validator) references(p *Profile) {
	m := &p.meta
	p.secrets = v.t.secrets
	p.metadata = MergeMetadata(v.t.Settings.Metadata, p.Metadata)
	if p.Image != "" && p.Kernel == "" {
		if p.image = v.t.Images[p.Image]; p.image == nil {
			v.errorf(m, "image", "image %q does not exist: no images/%s.yaml%s", p.Image, p.Image, didYouMean(p.Image, v.t.Images))
		}
	}
	if c := p.Config; c != nil && c.Template != "" {
		if p.config = v.t.Templates[c.Template]; p.config == nil {
			v.errorf(m, "config.template", "template %q does not exist: no templates/%s%s", c.Template, c.Template, didYouMean(c.Template, v.t.Templates))
		}
	}
}

// selectors checks the groups against each other: one default at most,
// no two identical selectors, and a warning where two equally specific
// groups could both match one machine.
func (v *validator) selectors() {
	ids := v.t.groupIDs
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
		key := g.selKey
		if first, dup := seen[key]; dup {
			v.errorf(&g.meta, "selector", "same selector as groups/%s.yaml (%s); a machine cannot tell them apart, merge them or change one", first, key)
			continue
		}
		seen[key] = id
		set := strings.Join(g.keys, ",")
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
		first.selKey, second.selKey, first.id, plural(len(first.Selector), "key"), first.id)
}

func (v *validator) settings(s *Settings) {
	v.discovery(s)
	v.rollout(s)
	m, o := &s.meta, &s.Omaha
	if u, err := url.Parse(o.Server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(m, "omaha.server", "invalid omaha.server %q: want an http(s):// URL", o.Server)
	}
	if u, err := url.Parse(o.KeyringURL); o.KeyringURL != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		v.errorf(m, "omaha.keyringURL", "invalid omaha.keyringURL %q: want an https:// URL", o.KeyringURL)
	}
	if time.Duration(o.Interval) < time.Minute {
		v.errorf(m, "omaha.interval", "omaha.interval %s is too short: at least 1m, so the update service is not hammered", time.Duration(o.Interval))
	}
	sample := (&Image{Channel: "stable", Arch: "amd64", meta: meta{id: "flatcar-stable"}}).MirrorData("4081.2.0")
	for _, f := range []struct{ path, text string }{{"omaha.mirror", o.Mirror}, {"omaha.branch", o.Branch}} {
		if _, err := sample.Expand(f.path, f.text); err != nil {
			v.errorf(m, f.path, "template: %s; data: .Channel .Arch .Board .Version .Image", templateErrMsg(err))
		}
	}
	if o.URLs != "assets" && o.URLs != "upstream" {
		v.errorf(m, "omaha.urls", "invalid omaha.urls %q: assets or upstream", o.URLs)
	}
	for i, fp := range o.Fingerprints {
		if len(fp) != 40 || strings.Trim(strings.ToUpper(fp), "0123456789ABCDEF") != "" {
			v.errorf(m, fmt.Sprintf("omaha.fingerprints[%d]", i), "invalid fingerprint %q: 40 hex digits, as gpg --fingerprint prints them without spaces", fp)
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
		Metadata:  MergeMetadata(p.metadata, g.Metadata),
		Group:     g.id,
		Profile:   p.id,
		ServerURL: serverURL,
		// The same by default; render sets the HTTPS URL when there is one.
		ConfigServerURL: serverURL,
	}
	d.selector = g.keys
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
// It returns the runs by their inputs, for the cache.
func (v *validator) runTemplates() map[runKey][]finding {
	usedProfiles, usedTemplates, reported := map[string]bool{}, map[string]bool{}, map[string]bool{}
	ids := v.t.groupIDs
	runs := map[runKey][]finding{}
	settingsMeta := canonical(v.t.Settings.Metadata)
	// Groups run on all cores; each writes only its own slots.
	findings := make([][]finding, len(ids))
	keys := make([]runKey, len(ids))
	forEach(len(ids), func(i int) {
		g := v.t.Groups[ids[i]]
		p := v.t.Profiles[g.Profile]
		if p == nil {
			return
		}
		keys[i] = runKey{g.sum, p.sum}
		if len(v.t.Settings.Metadata) > 0 {
			// pxeops.yaml's metadata is an input of every run.
			keys[i][1] = sha256.Sum256(append(p.sum[:], settingsMeta[:]...))
		}
		if p.image != nil {
			keys[i][2] = p.image.sum
		}
		if p.config != nil {
			keys[i][3] = p.config.sum
			if len(p.SecretNames()) > 0 {
				keys[i][4] = v.runSecrets.sum // a new value can break the config
			}
		}
		if f, ok := v.cache.run(keys[i]); ok {
			findings[i] = f
			return
		}
		if v.ctx.Err() != nil {
			return
		}
		findings[i] = []finding{} // ran, found nothing: still worth caching
		at := g.Pos("profile")
		if g.has("metadata") {
			at = g.Pos("metadata")
		}
		v.execProfile(p, EffectiveLoader(g, p) == LoaderGRUB, sampleData(g, p), func(where Pos, msg string, warn bool) {
			if strings.Contains(msg, "can't evaluate field") {
				findings[i] = append(findings[i], finding{at: where, msg: msg, bug: true})
			} else {
				findings[i] = append(findings[i], finding{at: at, msg: fmt.Sprintf("%s: %s (run for this group)", where, msg), warn: warn})
			}
		})
	})
	for i, id := range ids {
		if findings[i] != nil {
			runs[keys[i]] = findings[i]
		}
		if p := v.t.Profiles[v.t.Groups[id].Profile]; p != nil {
			usedProfiles[p.id] = true
			if p.config != nil {
				usedTemplates[p.config.id] = true
			}
		}
		for _, f := range findings[i] {
			switch {
			case f.warn:
				v.diags.warnf(f.at, "%s", f.msg)
			case !f.bug:
				v.diags.errorf(f.at, "%s", f.msg)
			case !reported[f.at.String()+f.msg]:
				// No data fixes a misspelt field: reported once, where the
				// template is written.
				reported[f.at.String()+f.msg] = true
				v.diags.errorf(f.at, "%s; fields: .MAC .UUID .Hostname .Serial .Arch .Labels .Metadata .Group .Profile .Image .ServerURL .ConfigServerURL .ConfigURL .InstalledURL", f.msg)
			}
		}
	}
	unused := &Group{meta: meta{id: "sample"}}
	for _, id := range v.t.profileIDs {
		p := v.t.Profiles[id]
		if usedProfiles[id] {
			continue
		}
		v.diags.warnf(p.Pos(""), "profile not used by any group")
		if p.config != nil {
			usedTemplates[p.config.id] = true
		}
		v.execProfile(p, p.Loader == LoaderGRUB, sampleData(unused, p), func(where Pos, msg string, _ bool) {
			v.diags.warnf(p.Pos(""), "%s: %s (run with sample data)", where, msg)
		})
	}
	for _, id := range v.t.templateIDs {
		if usedTemplates[id] {
			continue
		}
		tm := v.t.Templates[id]
		v.diags.warnf(Pos{File: tm.file}, "template not used by any profile")
		if tm.tmpl == nil {
			continue
		}
		if err := tm.tmpl.execute(v.ctx, io.Discard, sampleData(unused, &Profile{}), configLimits, v.runSecrets.Masked()); err != nil {
			v.diags.warnf(templateErrPos(tm.file, 1, 1, err), "%s (run with sample data)", templateErrMsg(err))
		}
	}
	return runs
}

// execProfile runs the profile's templates on data; grub says some
// machine boots it with GRUB, which takes fewer characters in arguments.
func (v *validator) execProfile(p *Profile, grub bool, data *TemplateData, report func(where Pos, msg string, warn bool)) {
	var buf strings.Builder
	cmdline := len(p.Args) - 1 // the spaces between arguments
	for i := range p.Args {
		if p.args == nil || p.args[i] == nil {
			cmdline += len(p.Args[i])
			continue
		}
		buf.Reset()
		where := p.Pos(fmt.Sprintf("args[%d]", i))
		if err := p.WriteArg(v.ctx, &buf, i, data); err != nil {
			report(where, templateErrMsg(err), false)
		} else if strings.ContainsAny(buf.String(), "\n\r\x00") {
			report(where, "renders a newline or NUL into a kernel argument", false)
		} else if buf.Len() == 0 {
			report(where, "renders an empty kernel argument", false)
		} else if err := CheckGRUBArg(buf.String()); grub && err != nil {
			report(where, fmt.Sprintf("renders %q: %v (loader grub)", buf.String(), err), false)
		}
		cmdline += buf.Len()
	}
	if cmdline > MaxCmdlineSize {
		report(p.Pos("args"), fmt.Sprintf("the kernel command line renders to %d bytes, over the %d it may be", cmdline, MaxCmdlineSize), false)
	}
	if p.config == nil || p.config.tmpl == nil {
		return
	}
	if ServesIgnition(p.Config.Type) {
		p.checkConfig(v.ctx, data, v.runSecrets, report)
		return
	}
	if err := p.writeConfig(v.ctx, io.Discard, data, v.runSecrets); err != nil {
		where := Pos{File: p.config.file}
		_, exec := errors.AsType[template.ExecError](err)
		_, budget := errors.AsType[*BudgetError](err)
		if exec || budget {
			where = templateErrPos(p.config.file, 1, 1, err)
		}
		report(where, templateErrMsg(err), false)
	}
}
