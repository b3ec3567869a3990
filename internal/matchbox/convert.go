// Package matchbox converts a matchbox (formerly bootcfg) data directory
// into a pxeops config tree: profiles/*.json and groups/*.json become
// profiles/ and groups/ YAML, the configs they name under ignition/,
// cloud/ and generic/ become templates/, with matchbox's template data
// (.mac, .request.query.x, group metadata at the top level) rewritten to
// pxeops' (.MAC, .Labels.x, .Metadata.x). Whatever changed and whatever
// has no translation is a Finding at the matchbox file's line.
package matchbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pxeops/pxeops/schema"
)

// Finding is one line of the import's report.
type Finding struct {
	File    string // slash path under the matchbox data directory
	Line    int    // 0: the whole file
	Message string
}

func (f Finding) String() string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)
	}
	return fmt.Sprintf("%s: %s", f.File, f.Message)
}

// Result is a converted tree (slash paths to contents) and its report.
type Result struct {
	Files  map[string][]byte
	Report []Finding
}

type profile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Boot struct {
		Kernel string   `json:"kernel"`
		Initrd []string `json:"initrd"`
		Args   []string `json:"args"`
		// bootcfg's older form of args: option name to value ("" for a flag).
		Cmdline map[string]string `json:"cmdline"`
	} `json:"boot"`
	IgnitionID string `json:"ignition_id"`
	CloudID    string `json:"cloud_id"`
	GenericID  string `json:"generic_id"`
}

type group struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Profile  string            `json:"profile"`
	Selector map[string]string `json:"selector"`
	Metadata map[string]any    `json:"metadata"`
}

// Output shapes, in the order pxeops' README documents the fields.
type outProfile struct {
	Description string     `yaml:"description,omitempty"`
	Kernel      string     `yaml:"kernel,omitempty"`
	Initrd      []string   `yaml:"initrd,omitempty"`
	Args        []string   `yaml:"args,omitempty"`
	Config      *outConfig `yaml:"config,omitempty"`
}

type outConfig struct {
	Template string `yaml:"template"`
	Type     string `yaml:"type"`
}

type outGroup struct {
	Description string            `yaml:"description,omitempty"`
	Profile     string            `yaml:"profile"`
	Selector    map[string]string `yaml:"selector,omitempty"`
	Metadata    map[string]any    `yaml:"metadata,omitempty"`
}

// kinds are matchbox's config directories in the order one is kept when
// a profile names several: pxeops serves one config per profile.
var kinds = []string{"ignition", "cloud", "generic"}

type loadedProfile struct {
	file string
	src  string
	p    profile
	id   string
	// kept is the config kind served ("" none) and its matchbox file.
	kept, keptFile string
	config         *outConfig
	groups         []*loadedGroup
}

type loadedGroup struct {
	file string
	src  string
	g    group
	id   string
}

type converter struct {
	in    map[string][]byte
	out   map[string][]byte
	found []Finding
}

func (c *converter) report(file string, line int, format string, args ...any) {
	c.found = append(c.found, Finding{File: file, Line: line, Message: fmt.Sprintf(format, args...)})
}

// Convert converts the matchbox files in (slash paths under the data
// directory, as Read returns them) into a pxeops tree.
func Convert(in map[string][]byte) *Result {
	c := &converter{in: in, out: map[string][]byte{}}
	profiles := map[string]*loadedProfile{}
	var groups []*loadedGroup
	for _, name := range slices.Sorted(maps.Keys(in)) {
		dir, base := path.Split(name)
		switch {
		case dir == "profiles/" && strings.HasSuffix(base, ".json"):
			if lp := c.loadProfile(name); lp != nil {
				if other, dup := profiles[lp.p.ID]; dup {
					c.report(name, lineOfKey(lp.src, "id"), "profile id %q is also %s's; skipped", lp.p.ID, other.file)
					continue
				}
				profiles[lp.p.ID] = lp
			}
		case dir == "groups/" && strings.HasSuffix(base, ".json"):
			if lg := c.loadGroup(name); lg != nil {
				groups = append(groups, lg)
			}
		case dir == "profiles/" || dir == "groups/":
			c.report(name, 0, "not a .json file; matchbox reads only *.json here; skipped")
		}
	}
	groups = c.groups(groups, profiles)
	c.templates(profiles)
	for _, lg := range groups {
		c.writeGroup(lg, profiles[lg.g.Profile])
	}
	for _, id := range slices.Sorted(maps.Keys(profiles)) {
		c.writeProfile(profiles[id])
	}
	c.unused(profiles)
	slices.SortStableFunc(c.found, func(a, b Finding) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
	return &Result{Files: c.out, Report: c.found}
}

// id picks a pxeops id (the output file's name) for a matchbox one.
func (c *converter) id(file, src, id string) string {
	fallback := strings.TrimSuffix(path.Base(file), ".json")
	if id == "" {
		return fallback
	}
	if !validID(id) {
		c.report(file, lineOfKey(src, "id"), "id %q is not a pxeops id (letters, digits, '.', '_', '-'); the file is named %s instead", id, fallback)
		return fallback
	}
	return id
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func validID(s string) bool { return len(s) <= 253 && idRe.MatchString(s) }

func (c *converter) loadProfile(file string) *loadedProfile {
	src := string(c.in[file])
	lp := &loadedProfile{file: file, src: src}
	if err := decodeJSON(src, &lp.p); err != nil {
		c.report(file, jsonErrLine(src, err), "not a matchbox profile: %v; skipped", err)
		return nil
	}
	c.unknownKeys(file, src, "", []string{"id", "name", "boot", "ignition_id", "cloud_id", "generic_id"})
	c.unknownKeys(file, src, "boot", []string{"kernel", "initrd", "args", "cmdline"})
	lp.id = c.id(file, src, lp.p.ID)
	if lp.p.ID == "" {
		lp.p.ID = lp.id
	}
	ids := map[string]string{"ignition": lp.p.IgnitionID, "cloud": lp.p.CloudID, "generic": lp.p.GenericID}
	for _, k := range kinds {
		if ids[k] == "" {
			continue
		}
		if lp.kept == "" {
			lp.kept, lp.keptFile = k, k+"/"+ids[k]
			continue
		}
		c.report(file, lineOfKey(src, k+"_id"), "%s config %s dropped: a pxeops profile serves one config and this one serves %s; make a second profile (and a group selecting its machines) for it, or fold it into the %s config", k, ids[k], lp.keptFile, lp.kept)
	}
	return lp
}

func (c *converter) loadGroup(file string) *loadedGroup {
	src := string(c.in[file])
	lg := &loadedGroup{file: file, src: src}
	if err := decodeJSON(src, &lg.g); err != nil {
		c.report(file, jsonErrLine(src, err), "not a matchbox group: %v; skipped", err)
		return nil
	}
	c.unknownKeys(file, src, "", []string{"id", "name", "profile", "selector", "metadata"})
	lg.id = c.id(file, src, lg.g.ID)
	lg.g.Metadata = numbers(lg.g.Metadata).(map[string]any)
	if _, ok := lg.g.Metadata["request"]; ok {
		c.report(file, lineOfKey(src, "request"), "metadata key request: matchbox replaced it with the request; kept as .Metadata.request")
	}
	return lg
}

// unknownKeys reports the keys of the object src (or of its member
// under, when not "") that matchbox does not read.
func (c *converter) unknownKeys(file, src, under string, known []string) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(src), &m) != nil {
		return
	}
	prefix := ""
	if under != "" {
		inner := m[under]
		m = nil
		if json.Unmarshal(inner, &m) != nil {
			return
		}
		prefix = under + "."
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			c.report(file, lineOfKey(src, k), "field %s%s is not part of matchbox's format; ignored", prefix, k)
		}
	}
}

// groups writes groups/ and ties each group to its profile.
func (c *converter) groups(groups []*loadedGroup, profiles map[string]*loadedProfile) []*loadedGroup {
	var kept []*loadedGroup
	seen := map[string]string{}
	var defaults []string
	for _, lg := range groups {
		if other, dup := seen[lg.id]; dup {
			c.report(lg.file, lineOfKey(lg.src, "id"), "group id %q is also %s's; skipped", lg.id, other)
			continue
		}
		seen[lg.id] = lg.file
		kept = append(kept, lg)
		if lp := profiles[lg.g.Profile]; lp != nil {
			lp.groups = append(lp.groups, lg)
		} else {
			c.report(lg.file, lineOfKey(lg.src, "profile"), "profile %q is not in profiles/; the group is written as is and check will fail", lg.g.Profile)
		}
		if len(lg.g.Selector) == 0 {
			defaults = append(defaults, lg.file)
		}
	}
	if len(defaults) > 1 {
		for _, f := range defaults {
			c.report(f, 0, "one of %d default groups (no selector): matchbox picks one at random, pxeops allows one; give all but one a selector", len(defaults))
		}
	}
	return kept
}

// writeGroup is called once the templates decided which selector
// labels their groups must also carry as metadata.
func (c *converter) writeGroup(lg *loadedGroup, lp *loadedProfile) {
	og := outGroup{Description: lg.g.Name, Profile: lg.g.Profile, Metadata: lg.g.Metadata}
	if lp != nil {
		og.Profile = lp.id
	}
	if len(lg.g.Selector) > 0 {
		og.Selector = map[string]string{}
		for k, v := range lg.g.Selector {
			og.Selector[k] = v
		}
	}
	c.write("groups/"+lg.id+".yaml", lg.file, og)
}

// templates converts each kept config once and decides, from the
// groups using it, whether matchbox's top-level keys are labels or
// metadata.
func (c *converter) templates(profiles map[string]*loadedProfile) {
	users := map[string][]*loadedProfile{}
	for _, id := range slices.Sorted(maps.Keys(profiles)) {
		if lp := profiles[id]; lp.kept != "" {
			users[lp.keptFile] = append(users[lp.keptFile], lp)
		}
	}
	names := map[string]string{} // output name -> matchbox file
	for _, file := range slices.Sorted(maps.Keys(users)) {
		kind := strings.SplitN(file, "/", 2)[0]
		name := path.Base(file)
		if _, clash := names[name]; clash {
			name = kind + "-" + name
		}
		names[name] = file
		var groups []*loadedGroup
		for _, lp := range users[file] {
			groups = append(groups, lp.groups...)
		}
		keys := dataKeys{machine: map[string]bool{}, labels: map[string]bool{}, metadata: map[string]bool{}}
		for _, lg := range groups {
			for k := range lg.g.Selector {
				if _, reserved := machineFields[k]; reserved {
					keys.machine[k] = true
				} else {
					keys.labels[k] = true
				}
			}
			for k := range lg.g.Metadata {
				keys.metadata[k] = true
			}
		}
		if _, found := c.in[file]; !found {
			// Said where it is named: the file itself is not there.
			for _, lp := range users[file] {
				c.report(lp.file, lineOfKey(lp.src, kind+"_id"), "%s_id names %s, which is not in the data directory; the profile is written without a config", kind, file)
			}
			continue
		}
		typ, text, used, ok := c.template(file, kind, keys)
		if !ok {
			continue
		}
		// A key that is a label in one group and metadata in another is
		// read as metadata; matchbox's selector wins over metadata, so
		// each group's metadata gets its selector's value.
		for _, lg := range groups {
			for _, k := range slices.Sorted(maps.Keys(lg.g.Selector)) {
				if !used[k] || !keys.labels[k] {
					continue
				}
				v := lg.g.Selector[k]
				switch old, has := lg.g.Metadata[k]; {
				case !has:
					if lg.g.Metadata == nil {
						lg.g.Metadata = map[string]any{}
					}
					c.report(lg.file, lineOfKey(lg.src, k), "selector %s copied to metadata: %s reads .%s, which other groups set in metadata", k, file, k)
				case old != v:
					c.report(lg.file, lineOfKey(lg.src, k), "metadata %s set to the selector's %q: matchbox's selector wins over metadata where %s reads .%s", k, v, file, k)
				default:
					continue
				}
				lg.g.Metadata[k] = v
			}
		}
		c.out["templates/"+name] = []byte(text)
		for _, lp := range users[file] {
			lp.config = &outConfig{Template: name, Type: typ}
		}
	}
}

// template converts one matchbox config file into a pxeops template and
// its config type; ok false: the file is missing and nothing is written.
func (c *converter) template(file, kind string, keys dataKeys) (typ, text string, used map[string]bool, ok bool) {
	data, found := c.in[file]
	if !found { // the caller reported it at the profile
		return "", "", nil, false
	}
	src := string(data)
	ext := path.Ext(file)
	header := "{{- /* Imported by pxeops import matchbox from " + strings.ReplaceAll(file, "*/", "* /") + ". */ -}}\n"
	switch {
	case kind == "ignition" && (ext == ".ign" || ext == ".ignition"):
		// matchbox serves raw Ignition as it is, untemplated.
		typ = schema.ConfigIgnition
		if strings.Contains(src, "{{") {
			c.report(file, 1+strings.Count(src[:strings.Index(src, "{{")], "\n"), "raw Ignition is not a template in matchbox: {{ escaped so pxeops serves it verbatim")
		}
		return typ, header + schema.EscapeTemplate(src), nil, true
	case kind == "ignition" && ext == ".json":
		// matchbox runs every file but raw Ignition through Butane, so a
		// .json with Butane's variant is Butane written as JSON.
		typ = schema.ConfigIgnition
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil && top["variant"] != nil {
			typ = schema.ConfigButane
		}
	case kind == "ignition":
		typ = schema.ConfigButane
	case kind == "cloud":
		typ = schema.ConfigRaw
		if t := strings.TrimLeft(src, " \t\r\n"); strings.HasPrefix(t, "#cloud-config") || strings.HasPrefix(t, "#!") {
			typ = schema.ConfigCloudConfig
		}
	default:
		typ = schema.ConfigRaw
	}
	out, findings, used := translate(file, src, keys)
	c.found = append(c.found, findings...)
	return typ, header + out, used, true
}

// endpoint finds matchbox's config endpoints in a kernel argument, e.g.
// coreos.config.url=http://matchbox.example.com:8080/ignition?uuid=${uuid}.
var endpoint = regexp.MustCompile(`https?://[^/\s?]+/(ignition|cloud|generic|metadata)(\?|$)`)

func (c *converter) writeProfile(lp *loadedProfile) {
	p := lp.p
	op := outProfile{Description: p.Name, Kernel: p.Boot.Kernel, Initrd: p.Boot.Initrd, Config: lp.config}
	kline := lineOfKey(lp.src, "kernel")
	switch k := p.Boot.Kernel; {
	case k == "":
		c.report(lp.file, lineOfKey(lp.src, "boot"), "no boot.kernel; check will fail")
	case !urlOrAsset(k):
		c.report(lp.file, kline, "kernel %s is neither http(s):// nor under /assets/; check will fail", k)
	}
	for _, i := range p.Boot.Initrd {
		if !urlOrAsset(i) {
			c.report(lp.file, lineOfString(lp.src, i), "initrd %s is neither http(s):// nor under /assets/; check will fail", i)
		}
	}
	type arg struct {
		text string
		line int
	}
	var args []arg
	for _, a := range p.Boot.Args {
		args = append(args, arg{a, lineOfString(lp.src, a)})
	}
	if len(p.Boot.Cmdline) > 0 {
		for _, k := range slices.Sorted(maps.Keys(p.Boot.Cmdline)) {
			a := k
			if v := p.Boot.Cmdline[k]; v != "" {
				a += "=" + v
			}
			args = append(args, arg{a, lineOfKey(lp.src, k)})
		}
		c.report(lp.file, lineOfKey(lp.src, "cmdline"), "boot.cmdline (bootcfg's older form) written as args, sorted by name")
	}
	initrdNames := map[string]bool{}
	for _, i := range p.Boot.Initrd {
		initrdNames[path.Base(i)] = true
	}
	for _, a := range args {
		a, line := a.text, a.line
		if v, ok := strings.CutPrefix(a, "initrd="); ok {
			if names := strings.Split(v, ","); !slices.ContainsFunc(names, func(n string) bool { return !initrdNames[n] }) {
				c.report(lp.file, line, "dropped %s: pxeops names the initrds itself and adds initrd= for each", a)
				continue
			}
			c.report(lp.file, line, "kept %s: it names a file that is not one of the initrds (pxeops adds initrd= for its own names too)", a)
		}
		out := schema.EscapeTemplate(a)
		if out != a {
			c.report(lp.file, line, "{{ escaped in %s: matchbox arguments are not templates, pxeops' are", a)
		}
		out = endpoint.ReplaceAllStringFunc(out, func(m string) string {
			sub := endpoint.FindStringSubmatch(m)
			ep, tail := sub[1], sub[2]
			switch {
			case ep == "metadata":
				ep = "metadata"
			case lp.kept == ep && lp.config != nil:
				ep = "config"
			default:
				c.report(lp.file, line, "%s: this profile serves no %s config in pxeops (see above); the URL is left pointing at matchbox", m, ep)
				return m
			}
			r := "{{ .ConfigServerURL }}/" + ep + tail
			c.report(lp.file, line, "%s -> %s (pxeops' own endpoint)", strings.TrimSuffix(m, tail), strings.TrimSuffix(r, tail))
			return r
		})
		op.Args = append(op.Args, out)
	}
	c.write("profiles/"+lp.id+".yaml", lp.file, op)
}

func urlOrAsset(s string) bool {
	return strings.HasPrefix(s, "/assets/") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// unused reports the config files no profile serves: they are not
// copied, since pxeops would run them with sample data only.
func (c *converter) unused(profiles map[string]*loadedProfile) {
	used := map[string]bool{}
	for _, lp := range profiles {
		used[lp.keptFile] = true
	}
	for _, name := range slices.Sorted(maps.Keys(c.in)) {
		kind, _, _ := strings.Cut(name, "/")
		if slices.Contains(kinds, kind) && !used[name] {
			c.report(name, 0, "no kept profile config names it; not copied")
		}
	}
}

func (c *converter) write(name, from string, v any) {
	var b bytes.Buffer
	b.WriteString("# Imported by pxeops import matchbox from " + from + ".\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		c.report(from, 0, "cannot write %s: %v", name, err)
		return
	}
	enc.Close()
	c.out[name] = b.Bytes()
}

// decodeJSON decodes one JSON object, numbers kept exact.
func decodeJSON(src string, v any) error {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// numbers turns json.Number into int64 or float64, so YAML gets numbers.
func numbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		for k, x := range v {
			v[k] = numbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = numbers(x)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

// lineOfKey is the line of the first "key": in src (0 if none): the
// report's position in a JSON file encoding/json does not give.
func lineOfKey(src, key string) int {
	re := regexp.MustCompile(`"` + regexp.QuoteMeta(key) + `"\s*:`)
	if loc := re.FindStringIndex(src); loc != nil {
		return 1 + strings.Count(src[:loc[0]], "\n")
	}
	return 0
}

// lineOfString is the line of the JSON string s in src.
func lineOfString(src, s string) int {
	q, _ := json.Marshal(s)
	for _, cand := range []string{string(q), `"` + s + `"`} {
		if i := strings.Index(src, cand); i >= 0 {
			return 1 + strings.Count(src[:i], "\n")
		}
	}
	return 0
}

func jsonErrLine(src string, err error) int {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(src)) {
		return 0
	}
	return 1 + strings.Count(src[:off], "\n")
}
