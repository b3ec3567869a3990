package schema

import (
	tparse "text/template/parse"
)

// fieldRefs lists the data fields a template reads, as paths from the
// root ({{ .Labels.rack }} is ["Labels", "rack"]). ok is false when the
// template does something the list cannot capture: {{ . }}, with, range,
// variables, or calls to other templates, all of which can reach data by
// other routes.
func fieldRefs(r *runner) (refs [][]string, ok bool) {
	if r == nil {
		return nil, false
	}
	t := r.tmpl
	if t.Tree == nil || len(t.Templates()) > 1 {
		return nil, false
	}
	ok = true
	var walk func(n tparse.Node)
	walk = func(n tparse.Node) {
		if !ok || n == nil {
			return
		}
		switch n := n.(type) {
		case *tparse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *tparse.TextNode:
		case *tparse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				ok = false
				return
			}
			walk(n.Pipe)
		case *tparse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		case *tparse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *tparse.FieldNode:
			refs = append(refs, n.Ident)
		case *tparse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *tparse.IdentifierNode, *tparse.StringNode, *tparse.NumberNode, *tparse.BoolNode, *tparse.NilNode:
		default: // DotNode, VariableNode, ChainNode, WithNode, RangeNode, TemplateNode, ...
			ok = false
		}
	}
	walk(t.Tree.Root)
	return refs, ok
}

// ConfigRefs reports which data fields the profile's config template
// reads; ok is false when that cannot be known or there is no config.
func (p *Profile) ConfigRefs() (refs [][]string, ok bool) {
	if p.config == nil {
		return nil, false
	}
	return fieldRefs(p.config.tmpl)
}

// ArgRefs reports which data fields argument i reads; ok is false when
// that cannot be known, and refs is nil for a static argument.
func (p *Profile) ArgRefs(i int) (refs [][]string, ok bool) {
	if p.args[i] == nil {
		return nil, true
	}
	return fieldRefs(p.args[i])
}
