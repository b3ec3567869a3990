package matchbox

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template/parse"
)

// machineFields are matchbox's reserved selector keys and pxeops' fields
// for them: the request's value, which equals the group's selector value
// whenever the group selected on it.
var machineFields = map[string]string{"mac": ".MAC", "uuid": ".UUID", "hostname": ".Hostname", "serial": ".Serial"}

// dataKeys says, for one template, where each top-level key of matchbox's
// data comes from in the groups that use it: labels (non-reserved selector
// keys) or metadata.
type dataKeys struct {
	machine  map[string]bool // reserved selector keys (mac, uuid, ...)
	labels   map[string]bool
	metadata map[string]bool
}

// indexLabel marks a target that is a label looked up with index.
const indexLabel = "index:"

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// translate rewrites matchbox template data references in src into
// pxeops' on the parse tree: only field and variable nodes change, and
// the rest of the text is kept byte for byte. Every change and every
// reference with no translation is a finding at file:line.
//
// used lists the top-level keys it made .Metadata references of.
func translate(file, src string, keys dataKeys) (out string, found []Finding, used map[string]bool) {
	t := parse.New(file)
	t.Mode = parse.ParseComments | parse.SkipFuncCheck
	set := map[string]*parse.Tree{}
	if _, err := t.Parse(src, "", "", set); err != nil {
		return src, []Finding{{File: file, Line: errLine(err), Message: fmt.Sprintf("not a Go template (%v); copied unchanged", err)}}, nil
	}
	tr := translator{file: file, src: src, keys: keys, used: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if set[name].Root != nil {
			tr.list(set[name].Root, true)
		}
	}
	slices.SortFunc(tr.edits, func(a, b edit) int { return a.start - b.start })
	var b strings.Builder
	last := 0
	for _, e := range tr.edits {
		if e.start < last {
			continue // one node seen twice (a define also in the set)
		}
		b.WriteString(src[last:e.start])
		b.WriteString(e.text)
		last = e.end
	}
	b.WriteString(src[last:])
	slices.SortStableFunc(tr.found, func(a, b Finding) int { return a.Line - b.Line })
	return b.String(), tr.found, tr.used
}

type translator struct {
	file  string
	src   string
	keys  dataKeys
	edits []edit
	found []Finding
	used  map[string]bool
}

func (tr *translator) line(pos parse.Pos) int {
	return 1 + strings.Count(tr.src[:min(int(pos), len(tr.src))], "\n")
}

func (tr *translator) report(pos parse.Pos, format string, args ...any) {
	tr.found = append(tr.found, Finding{File: tr.file, Line: tr.line(pos), Message: fmt.Sprintf(format, args...)})
}

// list walks a list of nodes; root says whether dot is still matchbox's
// data there (not inside a with or range, which move dot).
func (tr *translator) list(l *parse.ListNode, root bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		tr.node(n, root)
	}
}

func (tr *translator) node(n parse.Node, root bool) {
	switch n := n.(type) {
	case *parse.ActionNode:
		tr.pipe(n.Pipe, root)
	case *parse.IfNode:
		tr.pipe(n.Pipe, root)
		tr.list(n.List, root)
		tr.list(n.ElseList, root)
	case *parse.WithNode:
		tr.pipe(n.Pipe, root)
		tr.list(n.List, false)
		tr.list(n.ElseList, root)
	case *parse.RangeNode:
		tr.pipe(n.Pipe, root)
		tr.list(n.List, false)
		tr.list(n.ElseList, root)
	case *parse.TemplateNode:
		// {{ template "x" . }} hands on the data whole, which is right
		// once the defined template's references are translated too.
		if p := n.Pipe; root && p != nil && len(p.Cmds) == 1 && len(p.Cmds[0].Args) == 1 {
			if _, ok := p.Cmds[0].Args[0].(*parse.DotNode); ok {
				return
			}
		}
		tr.pipe(n.Pipe, root)
	case *parse.ListNode:
		tr.list(n, root)
	}
}

func (tr *translator) pipe(p *parse.PipeNode, root bool) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			tr.arg(a, root)
		}
	}
}

func (tr *translator) arg(a parse.Node, root bool) {
	switch a := a.(type) {
	case *parse.FieldNode:
		if root {
			tr.field(a.Pos, "", a.Ident)
		}
	case *parse.VariableNode:
		// $ is matchbox's data everywhere; other variables are the
		// template's own.
		if a.Ident[0] == "$" && len(a.Ident) > 1 {
			tr.field(a.Pos, "$", a.Ident[1:])
		}
	case *parse.PipeNode:
		tr.pipe(a, root)
	case *parse.ChainNode:
		tr.arg(a.Node, root)
	case *parse.DotNode:
		if root {
			tr.report(a.Pos, "the whole data (.) has no pxeops equivalent: pxeops' data is .MAC, .Labels, .Metadata, ...; rewrite by hand")
		}
	}
}

// field translates one reference: prefix is "" for .a.b or "$" for
// $.a.b, idents the names after it.
func (tr *translator) field(pos parse.Pos, prefix string, idents []string) {
	old := prefix + "." + strings.Join(idents, ".")
	// The parser puts a chained field's position at its second name.
	// The parser puts a chained reference's position at its first
	// chained name: .b of .a.b, .a of $.a.
	start := int(pos)
	switch {
	case prefix != "":
		start -= len(prefix)
	case len(idents) > 1:
		start -= 1 + len(idents[0])
	}
	if start < 0 || start+len(old) > len(tr.src) || tr.src[start:start+len(old)] != old {
		tr.report(pos, "%s: could not locate it in the text; left as is", old)
		return
	}
	repl, ok := tr.target(pos, idents)
	if !ok {
		return
	}
	if key, ok := strings.CutPrefix(repl, indexLabel); ok {
		// matchbox failed a request without the key; check runs pxeops'
		// templates with the selector's labels only, so a key no selector
		// has is looked up without failing.
		repl = fmt.Sprintf("(index %s.Labels %q)", prefix, key)
		tr.report(pos, "%s -> %s: no group's selector has %s, so it is empty when the request lacks it (matchbox failed the request)", old, repl, key)
	} else {
		repl = prefix + repl
		tr.report(pos, "%s -> %s", old, repl)
	}
	tr.edits = append(tr.edits, edit{start: start, end: start + len(old), text: repl})
}

// target is the pxeops reference for matchbox's .idents[0].idents[1]...
func (tr *translator) target(pos parse.Pos, idents []string) (string, bool) {
	rest := func(from int) string {
		if len(idents) <= from {
			return ""
		}
		return "." + strings.Join(idents[from:], ".")
	}
	first := idents[0]
	// matchbox merges the selector over the metadata: a reserved key
	// only in metadata (a hostname: key, say) is metadata.
	if f, ok := machineFields[first]; ok && !(tr.keys.metadata[first] && !tr.keys.machine[first]) {
		if len(idents) > 1 {
			tr.report(pos, ".%s: a field of %s has no meaning; left as is", strings.Join(idents, "."), first)
			return "", false
		}
		return f, true
	}
	if first == "request" {
		switch {
		case len(idents) >= 3 && idents[1] == "query":
			if f, ok := machineFields[idents[2]]; ok && len(idents) == 3 {
				return f, true
			}
			if len(idents) == 3 && tr.keys.labels[idents[2]] {
				return ".Labels." + idents[2], true
			}
			if len(idents) == 3 {
				return indexLabel + idents[2], true
			}
		case len(idents) == 2 && idents[1] == "raw_query":
			tr.report(pos, ".request.raw_query: pxeops templates do not see the raw query; left as is (rewrite with .MAC, .Labels)")
			return "", false
		}
		tr.report(pos, ".%s: no pxeops equivalent; left as is", strings.Join(idents, "."))
		return "", false
	}
	if tr.keys.labels[first] && !tr.keys.metadata[first] {
		return ".Labels." + first + rest(1), true
	}
	tr.used[first] = true
	return ".Metadata." + first + rest(1), true
}

// errLine pulls the line out of a template parse error
// ("template: name:LINE: ...").
func errLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, ":")
	if i < 0 {
		return 0
	}
	rest := msg[i+1:]
	// skip the name
	for {
		j := strings.Index(rest, ":")
		if j < 0 {
			return 0
		}
		var n int
		if _, e := fmt.Sscanf(rest[j+1:], "%d", &n); e == nil && n > 0 {
			return n
		}
		rest = rest[j+1:]
	}
}
