package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/template"
	tparse "text/template/parse"

	butane "github.com/coreos/butane/config"
	butanecommon "github.com/coreos/butane/config/common"
	ignition "github.com/coreos/ignition/v2/config"
	ign30 "github.com/coreos/ignition/v2/config/v3_0"
	ign31 "github.com/coreos/ignition/v2/config/v3_1"
	ign32 "github.com/coreos/ignition/v2/config/v3_2"
	ign33 "github.com/coreos/ignition/v2/config/v3_3"
	ign34 "github.com/coreos/ignition/v2/config/v3_4"
	ign35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"
	"gopkg.in/yaml.v3"
)

// ConfigButane is a config template written in Butane, translated to
// Ignition JSON after rendering.
const ConfigButane = "butane"

// ServesIgnition reports whether configs of type typ are served as
// Ignition JSON.
func ServesIgnition(typ string) bool { return typ == ConfigIgnition || typ == ConfigButane }

// configIssue is one finding of Butane or Ignition about a rendered config.
type configIssue struct {
	warn      bool
	msg       string
	line, col int    // in the rendered text; 0 when the report has none
	path      string // the field, e.g. storage.files.0.path; "" for the whole config
	atKey     bool   // the report is about the path's last key, not its value
}

// ConfigError is a rendered config that Butane or Ignition refuses.
type ConfigError struct {
	Type   string
	issues []configIssue // all of them, warnings too
}

func (e *ConfigError) Error() string {
	var msgs []string
	for _, is := range e.issues {
		if is.warn {
			continue
		}
		at := ""
		if is.line > 0 {
			at = fmt.Sprintf("rendered line %d:%d ", is.line, is.col)
		}
		if is.path != "" {
			at += "(" + is.path + ") "
		}
		msgs = append(msgs, at+is.msg)
	}
	return e.Type + ": " + strings.Join(msgs, "; ")
}

// finishConfig turns the rendered text of an ignition or butane config
// into the Ignition JSON served. Butane checks what it translates;
// Ignition's parser is check's (validateConfig), not every request's.
func finishConfig(typ string, rendered []byte) (out []byte, issues []configIssue, err error) {
	return finish(typ, rendered, false)
}

// validateConfig is finishConfig with the result also parsed by
// Ignition's own parser. issues are what Butane and Ignition reported;
// when any is fatal, err is a *ConfigError holding them all.
func validateConfig(typ string, rendered []byte) (out []byte, issues []configIssue, err error) {
	return finish(typ, rendered, true)
}

func finish(typ string, rendered []byte, validate bool) (out []byte, issues []configIssue, err error) {
	defer func() {
		// As with YAML: a library fed repository content must not take
		// the process down.
		if r := recover(); r != nil {
			out, issues, err = nil, nil, fmt.Errorf("%s failed on this config: %v", typ, r)
		}
	}()
	switch typ {
	case ConfigIgnition:
		if out, err = ignitionJSON(rendered); err != nil {
			return nil, nil, err
		}
		if validate {
			issues = ignitionIssues(out, rendered, "")
		}
	case ConfigButane:
		out, issues = translateButane(rendered)
		if fatal(issues) {
			break
		}
		if len(out) > MaxConfigSize {
			return nil, nil, fmt.Errorf("Butane's output is %d bytes, over the %d a config may be", len(out), MaxConfigSize)
		}
		if !validate {
			break
		}
		// Butane validates what it generates, and its warnings came with
		// positions already; Ignition's parser is the judge at boot, so
		// its errors about the output count too. Their positions are in
		// that JSON, not the template: only the field path is kept.
		for _, is := range ignitionIssues(out, nil, "in Butane's output: ") {
			if !is.warn {
				issues = append(issues, is)
			}
		}
	default:
		return rendered, nil, nil
	}
	if err == nil && fatal(issues) {
		err = &ConfigError{Type: typ, issues: issues}
	}
	if err != nil {
		return nil, issues, err
	}
	return out, issues, nil
}

func fatal(issues []configIssue) bool {
	for _, is := range issues {
		if !is.warn {
			return true
		}
	}
	return false
}

// ignitionIssues parses an Ignition JSON config with Ignition's parser.
// yamlText, when not nil, is the YAML (or JSON) it was converted from:
// report paths are looked up there for a line and column, as Ignition's
// own are into the one-line JSON.
func ignitionIssues(js, yamlText []byte, prefix string) []configIssue {
	var head struct {
		Ignition struct{ Version string } `json:"ignition"`
	}
	_ = json.Unmarshal(js, &head) // ignitionJSON and Butane made js
	if v := head.Ignition.Version; strings.HasPrefix(v, "2.") {
		// Spec 2 is legacy CoreOS's; Ignition v2 parses 3.x only.
		return nil
	}
	rep, err := parseIgnition(head.Ignition.Version, js)
	issues := reportIssues(rep, nil)
	if yamlText != nil {
		root := yamlRoot(yamlText)
		for i := range issues {
			issues[i].line, issues[i].col = yamlPathPos(root, issues[i].path, issues[i].atKey)
		}
	}
	if err != nil && !fatal(issues) {
		is := configIssue{msg: err.Error(), path: "ignition.version"}
		if strings.Contains(err.Error(), "version") {
			is.msg = fmt.Sprintf("%s %q: Ignition v2.24 reads 3.0.0 to 3.5.0 (spec 2.x, legacy CoreOS's, is passed unchecked)", err, head.Ignition.Version)
		}
		if yamlText != nil {
			is.line, is.col = yamlPathPos(yamlRoot(yamlText), is.path, false)
		}
		issues = append(issues, is)
	}
	for i := range issues {
		issues[i].msg = prefix + issues[i].msg
	}
	return issues
}

// parseIgnition parses with the parser of the config's spec version:
// the same report as ignition.Parse, without its translation up to the
// newest spec, a third of its time, paid for every group's config in
// check.
func parseIgnition(version string, js []byte) (rep report.Report, err error) {
	switch version {
	case "3.0.0":
		_, rep, err = ign30.Parse(js)
	case "3.1.0":
		_, rep, err = ign31.Parse(js)
	case "3.2.0":
		_, rep, err = ign32.Parse(js)
	case "3.3.0":
		_, rep, err = ign33.Parse(js)
	case "3.4.0":
		_, rep, err = ign34.Parse(js)
	case "3.5.0":
		_, rep, err = ign35.Parse(js)
	default:
		_, rep, err = ignition.Parse(js)
	}
	return rep, err
}

// translateButane translates a rendered Butane config; its report's
// positions are in the rendered text.
func translateButane(rendered []byte) ([]byte, []configIssue) {
	out, rep, err := butane.TranslateBytes(rendered, butanecommon.TranslateBytesOptions{Raw: true})
	issues := reportIssues(rep, func(e report.Entry) (int, int) {
		if e.Marker.StartP == nil {
			return 0, 0
		}
		return int(e.Marker.StartP.Line), int(e.Marker.StartP.Column)
	})
	if err != nil && !fatal(issues) {
		// Errors without an entry are about the document as a whole: an
		// unknown variant or version, or YAML Butane cannot read.
		is := configIssue{msg: err.Error()}
		if strings.Contains(err.Error(), "variant") {
			is.path = "variant"
			is.line, is.col = yamlPathPos(yamlRoot(rendered), "variant", false)
			is.msg += " (Butane v0.25.1: variant flatcar 1.0.0 to 1.1.0, fcos 1.0.0 to 1.6.0, among others)"
		}
		issues = append(issues, is)
	}
	return out, issues
}

// reportIssues converts a vcontext report. Unknown keys are errors,
// though Butane and Ignition only warn: what they drop is a misspelt
// field (files: as file:, source: as sorce:) whose content never reaches
// the machine, and pxeops refuses unknown fields in its own files too.
func reportIssues(rep report.Report, pos func(report.Entry) (int, int)) []configIssue {
	var issues []configIssue
	for _, e := range rep.Entries {
		if e.Kind != report.Error && e.Kind != report.Warn {
			continue // info
		}
		is := configIssue{warn: e.Kind == report.Warn, msg: e.Message, path: contextPath(e.Context.Path)}
		if strings.HasPrefix(e.Message, "unused key") {
			is.warn, is.atKey = false, true
			is.msg += ": not a field here, so it would be dropped (misspelt?)"
		}
		if strings.Contains(e.Message, "-d/--files-dir") {
			// Butane's CLI flag means nothing here.
			is.msg = "local files cannot be embedded: pxeops gives Butane no files directory (the config is rendered per machine, from git); write the content inline or as a source URL"
		}
		if pos != nil {
			is.line, is.col = pos(e)
		}
		issues = append(issues, is)
	}
	return issues
}

func contextPath(p []any) string {
	var b strings.Builder
	for i, el := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprint(&b, el)
	}
	return b.String()
}

// yamlRoot parses rendered YAML (or JSON) for positions; nil when it
// does not parse, which ignitionJSON or Butane report on their own.
func yamlRoot(text []byte) (root *yaml.Node) {
	defer func() {
		if recover() != nil {
			root = nil
		}
	}()
	var doc yaml.Node
	if yaml.Unmarshal(text, &doc) != nil || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil // an empty document's node can stand past the text's end
	}
	return doc.Content[0]
}

// yamlPathPos is where the deepest node on a dotted report path (keys and
// list indexes) stands in root: at the value when it is a scalar, unless
// atKey asks for its key (an unknown field's report).
func yamlPathPos(root *yaml.Node, path string, atKey bool) (line, col int) {
	if root == nil {
		return 0, 0
	}
	n := root
	line, col = n.Line, n.Column
	if path == "" {
		return line, col
	}
	for _, el := range strings.Split(path, ".") {
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == el {
					line, col = n.Content[i].Line, n.Content[i].Column
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return line, col
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(el)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line, col
			}
			n = n.Content[i]
			line, col = n.Line, n.Column
		default:
			return line, col
		}
	}
	if n.Kind == yaml.ScalarNode && !atKey {
		line, col = n.Line, n.Column
	}
	return line, col
}

// srcMap records where a template run's output came from, so a position
// Butane or Ignition reports in the rendered text can be given in the
// template. text/template writes a text node's own byte slice, so a
// Write whose first byte is one of theirs is that node's text; anything
// else is an action's output, placed where the action stands (just after
// the text before it).
type srcMap struct {
	w     io.Writer
	text  map[*byte]int // first byte of each text node → its offset in the source
	segs  []srcSeg
	n     int
	after int // source offset just past the last text written
}

type srcSeg struct {
	out, src int
	text     bool
}

func newSrcMap(r *runner, w io.Writer) *srcMap {
	m := &srcMap{w: w, text: map[*byte]int{}}
	for _, t := range r.tmpl.Templates() {
		if t.Tree == nil {
			continue
		}
		walkNodes(t.Tree.Root, func(n tparse.Node) {
			if tn, ok := n.(*tparse.TextNode); ok && len(tn.Text) > 0 {
				m.text[&tn.Text[0]] = int(tn.Pos)
			}
		})
	}
	return m
}

func (m *srcMap) Write(p []byte) (int, error) {
	if len(p) > 0 {
		if off, ok := m.text[&p[0]]; ok {
			m.segs = append(m.segs, srcSeg{out: m.n, src: off, text: true})
			m.after = off + len(p)
		} else {
			m.segs = append(m.segs, srcSeg{out: m.n, src: m.after})
		}
	}
	m.n += len(p)
	return m.w.Write(p)
}

// sourcePos maps line and column of the rendered text to the template
// source's.
func (m *srcMap) sourcePos(rendered []byte, source string, line, col int) (int, int) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(rendered[off:], '\n')
		if i < 0 {
			return 0, 0
		}
		off += i + 1
	}
	off += col - 1
	var seg *srcSeg
	for i := range m.segs {
		if m.segs[i].out > off {
			break
		}
		seg = &m.segs[i]
	}
	if seg == nil {
		return 0, 0
	}
	src := seg.src
	if seg.text {
		src += off - seg.out
	}
	return lineCol(source, src)
}

// checkConfig renders p's config for data as WriteConfig does and
// reports what Butane and Ignition say about it, at positions in the
// template, warnings too. When the config reads real secrets, what is
// reported comes from a run with the values masked, as an error or
// warning could quote them.
func (p *Profile) checkConfig(ctx context.Context, data *TemplateData, sec *Secrets, report func(where Pos, msg string, warn bool)) {
	t := p.config
	run := func(sec *Secrets) (issues []configIssue, where func(configIssue) Pos, err error) {
		var buf bytes.Buffer
		m := newSrcMap(t.tmpl, &buf)
		if err := t.tmpl.execute(ctx, m, data, configLimits, sec); err != nil {
			return nil, nil, err
		}
		_, issues, err = validateConfig(p.Config.Type, buf.Bytes())
		where = func(is configIssue) Pos {
			if is.line == 0 {
				return Pos{File: t.file}
			}
			l, c := m.sourcePos(buf.Bytes(), t.Source, is.line, is.col)
			return Pos{File: t.file, Line: l, Col: c}
		}
		return issues, where, err
	}
	issues, where, err := run(sec)
	if (err != nil || len(issues) > 0) && sec.real() && len(p.SecretNames()) > 0 {
		mi, mwhere, merr := run(sec.Masked())
		switch {
		case merr != nil || len(mi) > 0:
			issues, where, err = mi, mwhere, merr
		case err != nil:
			issues, err = nil, errSecretValues
		default:
			report(Pos{File: t.file}, p.Config.Type+" warns about the config only with the secrets' values; not shown, as a warning can quote them", true)
			return
		}
	}
	if _, ok := errors.AsType[*ConfigError](err); err != nil && !ok {
		at := Pos{File: t.file}
		_, exec := errors.AsType[template.ExecError](err)
		_, budget := errors.AsType[*BudgetError](err)
		if exec || budget {
			at = templateErrPos(t.file, 1, 1, err)
		}
		report(at, templateErrMsg(err), false)
		return
	}
	for _, is := range issues {
		msg := is.msg
		if is.path != "" {
			msg = is.path + ": " + msg
		}
		report(where(is), p.Config.Type+": "+msg, is.warn)
	}
}
