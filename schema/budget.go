package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"
	"sync"
	"text/template"
	tparse "text/template/parse"
	"time"
)

// Limits bound one template run: text/template has loops, recursion and
// string functions but no notion of cost, and templates come from the
// repository, so a commit must not be able to spin a CPU forever or fill
// memory, in check or in serve.
type Limits struct {
	Of     string        // what runs, for errors: "a config"
	Output int           // bytes the run may write
	Work   int           // bytes the string functions (print, printf, html, b64enc, toJson, ...) may build
	Steps  int           // range iterations, template calls and function-calling actions
	Time   time.Duration // wall time
}

// Budgets of the templates a tree holds. check and serve use the same,
// so what check accepts, serve renders.
const (
	MaxConfigSize  = 8 << 20  // a rendered config, bytes
	MaxCmdlineSize = 16 << 10 // a rendered kernel command line, bytes (Linux's own is 2 KiB on x86)
	maxSteps       = 100_000
	maxRunTime     = 5 * time.Second
)

var (
	configLimits = Limits{Of: "a config", Output: MaxConfigSize, Work: 4 * MaxConfigSize, Steps: maxSteps, Time: maxRunTime}
	argLimits    = Limits{Of: "a kernel argument", Output: MaxCmdlineSize, Work: 1 << 20, Steps: maxSteps, Time: maxRunTime}
)

// BudgetError is a template run that went past one of its Limits. Line
// and Col are where in the template text the run was when it stopped.
type BudgetError struct {
	Line, Col int
	msg       string
}

func (e *BudgetError) Error() string { return e.msg }

// stepFunc is the function the runner plants in a template's parse tree:
// before each range iteration, template call and function-calling action.
const stepFunc = "pxeopsStep"

// wrapped are the builtins that can build strings larger than their
// inputs, with how many bytes one input byte can become; each is replaced
// by a copy that counts what it builds. printf, which also has widths, is
// budget.printf.
var wrapped = map[string]struct {
	grow int
	fn   func(...any) string
}{
	"print":    {1, fmt.Sprint},
	"println":  {1, fmt.Sprintln},
	"html":     {6, template.HTMLEscaper},     // " → &#34;
	"js":       {6, template.JSEscaper},       // < → \u003C
	"urlquery": {3, template.URLQueryEscaper}, // ' ' → %20
}

// runner is a parsed template that runs within Limits. It is the one way
// pxeops executes a template.
type runner struct {
	tmpl  *template.Template // as parsed, steps planted; read-only
	steps []stepPos          // where each planted step stands
	pool  sync.Pool          // of *instance
	// secrets are the {{ secret "name" }} calls, found at parse time.
	secrets []secretRef
}

type stepPos struct{ line, col int }

// instance is a copy of the template whose functions count into its own
// budget: one run at a time uses it.
type instance struct {
	tmpl *template.Template
	b    budget
	w    limitWriter
}

type budget struct {
	lim      Limits
	ctx      context.Context
	deadline time.Time
	steps    int
	work     int
	at       int // index of the last step taken, -1 before the first
	r        *runner
	secrets  *Secrets // what {{ secret }} reads in this run
}

func parseTemplate(name, text string) (*runner, error) {
	funcs := template.FuncMap{
		stepFunc:   func(int) (string, error) { return "", nil },
		secretFunc: func(string) (string, error) { return "", nil },
	}
	maps.Copy(funcs, (*budget)(nil).funcs()) // names only: instance binds them
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	r := &runner{tmpl: t}
	if r.secrets, err = findSecretRefs(t, text); err != nil {
		return nil, fmt.Errorf("template: %s:%w", name, err)
	}
	for _, sub := range t.Templates() {
		if sub.Tree == nil || sub.Tree.Root == nil {
			continue
		}
		if err := refuseRootAssign(sub.Tree.Root); err != nil {
			return nil, fmt.Errorf("template: %s: %w", name, err)
		}
		r.plant(sub.Tree.Root, text, true)
	}
	if len(r.steps) == 1 && len(t.Templates()) == 1 {
		// Text and fields only ({{ .MAC }}): bounded by the data, and the
		// boot path renders such arguments per request, so no step.
		t.Tree.Root.Nodes = t.Tree.Root.Nodes[1:]
		r.steps = nil
	}
	r.pool.New = func() any { return r.instance() }
	return r, nil
}

// refuseRootAssign refuses {{ $ = ... }}: nothing in pxeops needs it, and
// it is the one way a template could change what $ means to later code.
func refuseRootAssign(n tparse.Node) error {
	var err error
	walkNodes(n, func(n tparse.Node) {
		if p, ok := n.(*tparse.PipeNode); ok && p.IsAssign {
			for _, v := range p.Decl {
				if len(v.Ident) > 0 && v.Ident[0] == "$" {
					err = errors.New("assigning to $ is not allowed")
				}
			}
		}
	})
	return err
}

func walkNodes(n tparse.Node, fn func(tparse.Node)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	fn(n)
	switch n := n.(type) {
	case *tparse.ListNode:
		for _, c := range n.Nodes {
			walkNodes(c, fn)
		}
	case *tparse.ActionNode:
		walkNodes(n.Pipe, fn)
	case *tparse.PipeNode:
		for _, c := range n.Cmds {
			walkNodes(c, fn)
		}
	case *tparse.CommandNode:
		for _, a := range n.Args {
			walkNodes(a, fn)
		}
	case *tparse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *tparse.WithNode:
		walkBranch(&n.BranchNode, fn)
	case *tparse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *tparse.TemplateNode:
		walkNodes(n.Pipe, fn)
	case *tparse.ChainNode:
		walkNodes(n.Node, fn)
	}
}

func walkBranch(b *tparse.BranchNode, fn func(tparse.Node)) {
	walkNodes(b.Pipe, fn)
	walkNodes(b.List, fn)
	walkNodes(b.ElseList, fn)
}

// plant puts a step before every node of list that can cost more than
// printing a field, at the start of every range body and, for a
// template's root, at its start: every loop and call then passes a step.
func (r *runner) plant(list *tparse.ListNode, text string, root bool) {
	if list == nil {
		return
	}
	var out []tparse.Node
	if root {
		out = append(out, r.step(list.Pos, text))
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *tparse.ActionNode:
			if !plainField(n.Pipe) {
				out = append(out, r.step(n.Pos, text))
			}
		case *tparse.IfNode:
			out = append(out, r.step(n.Pos, text))
			r.plant(n.List, text, false)
			r.plant(n.ElseList, text, false)
		case *tparse.WithNode:
			out = append(out, r.step(n.Pos, text))
			r.plant(n.List, text, false)
			r.plant(n.ElseList, text, false)
		case *tparse.RangeNode:
			out = append(out, r.step(n.Pos, text))
			r.plant(n.List, text, false)
			n.List.Nodes = append([]tparse.Node{r.step(n.Pos, text)}, n.List.Nodes...)
			r.plant(n.ElseList, text, false)
		case *tparse.TemplateNode:
			out = append(out, r.step(n.Pos, text))
		}
		out = append(out, n)
	}
	list.Nodes = out
}

// plainField reports whether a pipeline only reads data ({{ .MAC }},
// {{ $x }}): bounded by the data itself, so no step is needed.
func plainField(p *tparse.PipeNode) bool {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch p.Cmds[0].Args[0].(type) {
	case *tparse.FieldNode, *tparse.VariableNode, *tparse.DotNode:
		return true
	}
	return false
}

// step makes the node {{ pxeopsStep i }}, which prints nothing.
func (r *runner) step(pos tparse.Pos, text string) tparse.Node {
	i := len(r.steps)
	line, col := lineCol(text, int(pos))
	r.steps = append(r.steps, stepPos{line, col})
	cmd := &tparse.CommandNode{NodeType: tparse.NodeCommand, Pos: pos, Args: []tparse.Node{
		&tparse.IdentifierNode{NodeType: tparse.NodeIdentifier, Pos: pos, Ident: stepFunc},
		&tparse.NumberNode{NodeType: tparse.NodeNumber, Pos: pos, IsInt: true, Int64: int64(i), Text: fmt.Sprint(i)},
	}}
	return &tparse.ActionNode{NodeType: tparse.NodeAction, Pos: pos, Pipe: &tparse.PipeNode{NodeType: tparse.NodePipe, Pos: pos, Cmds: []*tparse.CommandNode{cmd}}}
}

func lineCol(text string, pos int) (line, col int) {
	pos = min(pos, len(text))
	before := text[:pos]
	line = 1 + strings.Count(before, "\n")
	return line, pos - strings.LastIndexByte(before, '\n')
}

// instance clones the template with functions bound to a budget of its own.
func (r *runner) instance() *instance {
	in := &instance{tmpl: template.Must(r.tmpl.Clone())}
	b := &in.b
	b.r = r
	funcs := b.funcs()
	funcs[stepFunc], funcs["printf"], funcs[secretFunc] = b.step, b.printf, b.secret
	for name, w := range wrapped {
		funcs[name] = func(a ...any) (string, error) {
			return b.build(w.grow*estimate(a), func() string { return w.fn(a...) })
		}
	}
	in.tmpl.Funcs(funcs)
	in.w.b = b
	return in
}

// Execute runs the template on data, writing to w, within lim. A run
// that goes past a limit fails with a *BudgetError; one whose ctx ends
// fails with the context's error.
func (r *runner) Execute(ctx context.Context, w io.Writer, data any, lim Limits) error {
	return r.execute(ctx, w, data, lim, nil)
}

// execute is Execute with {{ secret }} reading from sec.
func (r *runner) execute(ctx context.Context, w io.Writer, data any, lim Limits, sec *Secrets) error {
	if r == nil {
		return errors.New("template did not parse")
	}
	in := r.pool.Get().(*instance)
	defer r.pool.Put(in)
	in.b.reset(ctx, lim)
	in.b.secrets = sec
	in.w.w, in.w.n = w, 0
	err := in.tmpl.Execute(&in.w, data)
	in.w.w = nil
	return err
}

func (b *budget) reset(ctx context.Context, lim Limits) {
	*b = budget{lim: lim, ctx: ctx, deadline: time.Now().Add(lim.Time), at: -1, r: b.r}
}

func (b *budget) step(i int) (string, error) {
	b.at = i
	b.steps++
	if b.steps > b.lim.Steps {
		return "", b.exceeded("ran past %d steps (range iterations, template calls and function calls) in one run: a range over a huge number, or runaway recursion?", b.lim.Steps)
	}
	if b.steps&63 == 1 {
		if err := b.ctx.Err(); err != nil {
			return "", err
		}
		if time.Now().After(b.deadline) {
			return "", b.exceeded("ran longer than %s in one run", b.lim.Time)
		}
	}
	return "", nil
}

// secret is {{ secret "name" }}. It builds nothing (the value is a
// string already held, like a field), so it spends no work: the step
// planted before its action counts the call, the output limit counts
// what it prints, and a string function fed with it counts its length.
func (b *budget) secret(name string) (string, error) {
	if b.secrets == nil {
		return "", (*Secrets)(nil).missing(name)
	}
	return b.secrets.value(name)
}

func (b *budget) spend(n int) error {
	b.work += n
	if b.work > b.lim.Work {
		return b.workExceeded()
	}
	return nil
}

func (b *budget) workExceeded() error {
	return b.exceeded("builds more than %d bytes of text with string functions (print, printf, b64enc, toJson, ...) in one run", b.lim.Work)
}

func (b *budget) exceeded(format string, a ...any) *BudgetError {
	e := &BudgetError{Line: 1, Col: 1, msg: fmt.Sprintf(format, a...)}
	if b.at >= 0 {
		e.Line, e.Col = b.r.steps[b.at].line, b.r.steps[b.at].col
	}
	return e
}

// printf is fmt.Sprintf, refusing before it builds a string past the
// budget: a width such as %999999d makes a big string from nothing.
func (b *budget) printf(format string, a ...any) (string, error) {
	return b.build(len(format)+formatWidths(format)+estimate(a), func() string { return fmt.Sprintf(format, a...) })
}

// build makes a string with f when what it is known to cost up front,
// pre, fits the budget, then counts what it built.
func (b *budget) build(pre int, f func() string) (string, error) {
	if b.work+pre > b.lim.Work {
		return "", b.workExceeded()
	}
	s := f()
	return s, b.spend(len(s))
}

// formatWidths sums the widths and precisions a format asks for; a * is
// counted as fmt's own cap on widths.
func formatWidths(format string) int {
	total := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n := 0
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[]", format[i]) >= 0; i++ {
			switch c := format[i]; {
			case c >= '0' && c <= '9':
				n = min(n*10+int(c-'0'), 1e7)
			case c == '*':
				total += 1e6
			default:
				total, n = total+n, 0
			}
		}
		total += n
	}
	return total
}

// estimate is what stringifying a is known to cost before doing it: the
// strings' lengths; other values are counted after, by what they built.
func estimate(a []any) int {
	n := 0
	for _, v := range a {
		switch v := v.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		}
	}
	return n
}

// limitWriter fails the run once it has written its budget.
type limitWriter struct {
	w io.Writer
	n int
	b *budget
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+len(p) > l.b.lim.Output {
		return 0, l.b.exceeded("output exceeds %d bytes, the most %s may render", l.b.lim.Output, l.b.lim.Of)
	}
	l.n += len(p)
	return l.w.Write(p)
}
