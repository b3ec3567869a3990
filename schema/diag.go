package schema

import (
	"cmp"
	"fmt"
	"slices"
)

// Severity says whether a diagnostic stops a tree from being served.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	// Notice says how a valid tree will be used (pxeops check's own
	// findings); nothing to fix.
	Notice Severity = "notice"
)

// Pos is a position in a file of the tree: 1-based line and column.
// A zero Line means the whole file.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"column,omitempty"`
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Diagnostic is one finding about a tree, anchored where a person would fix it.
type Diagnostic struct {
	Pos
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Transient marks a failure to read the tree (not its content being
	// wrong): reading again may succeed without anyone changing a file.
	Transient bool `json:"transient,omitempty"`
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s", d.Pos, d.Severity, d.Message)
}

// Diagnostics collects every finding of a tree, not just the first.
type Diagnostics []Diagnostic

func (ds *Diagnostics) errorf(p Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

// readErrorf reports a file or directory that could not be read.
func (ds *Diagnostics) readErrorf(p Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Error, Message: fmt.Sprintf(format, args...), Transient: true})
}

// Transient reports whether any error is a read failure worth retrying.
func (ds Diagnostics) Transient() bool {
	for _, d := range ds {
		if d.Severity == Error && d.Transient {
			return true
		}
	}
	return false
}

func (ds *Diagnostics) warnf(p Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Warning, Message: fmt.Sprintf(format, args...)})
}

// Errors counts the diagnostics that make a tree invalid.
func (ds Diagnostics) Errors() int {
	n := 0
	for _, d := range ds {
		if d.Severity == Error {
			n++
		}
	}
	return n
}

// FirstError is the first error in the diagnostics' order (Load sorts
// them by position), as a log line or error gives it; "" when none.
func (ds Diagnostics) FirstError() string {
	for _, d := range ds {
		if d.Severity == Error {
			return d.String()
		}
	}
	return ""
}

// Warnings counts the diagnostics that do not block serving but want a
// look; notices are not counted.
func (ds Diagnostics) Warnings() int {
	n := 0
	for _, d := range ds {
		if d.Severity == Warning {
			n++
		}
	}
	return n
}

// Sort orders diagnostics by file, line and column so output is stable.
func (ds Diagnostics) Sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Severity, b.Severity),
			cmp.Compare(a.Message, b.Message),
		)
	})
}
