package updater

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ImageEdit is what the updater changes in images/<id>.yaml.
type ImageEdit struct {
	Version string
	Kernel  FileRef
	Initrd  FileRef // the first initrd; any further ones are the operator's
}

// FileRef is one file of an image.
type FileRef struct {
	URL, SHA256 string
}

// EditImage rewrites only the values the update changes, in place, in
// the style they were written (plain or quoted); comments, key order,
// spacing and every other byte stay as they were. A missing sha256 is
// added on its own line below its siblings.
func EditImage(src []byte, e ImageEdit) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("1:1: not a mapping")
	}
	ed := &editor{src: src, lines: lineStarts(src)}
	root := doc.Content[0]
	ed.set(root, "version", e.Version)
	if kernel := ed.mapping(root, "kernel"); kernel != nil {
		ed.set(kernel, "url", e.Kernel.URL)
		ed.set(kernel, "sha256", e.Kernel.SHA256)
	}
	if seq := value(root, "initrd"); seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		ed.fail(root, "initrd is not a list of files")
	} else if first := seq.Content[0]; first.Kind != yaml.MappingNode {
		ed.fail(first, "initrd[0] is not a mapping with url and sha256")
	} else {
		ed.set(first, "url", e.Initrd.URL)
		ed.set(first, "sha256", e.Initrd.SHA256)
	}
	if ed.err != nil {
		return nil, ed.err
	}
	return ed.apply(), nil
}

type splice struct {
	start, end int
	text       string
}

type editor struct {
	src     []byte
	lines   []int // offset of each line's first byte
	splices []splice
	err     error
}

func (ed *editor) fail(n *yaml.Node, format string, args ...any) {
	if ed.err == nil {
		ed.err = fmt.Errorf("%d:%d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))
	}
}

func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func (ed *editor) mapping(m *yaml.Node, key string) *yaml.Node {
	v := value(m, key)
	if v == nil || v.Kind != yaml.MappingNode {
		ed.fail(m, "%s is not a mapping with url and sha256", key)
		return nil
	}
	return v
}

// set replaces the scalar at key, or adds key below the mapping's last line.
func (ed *editor) set(m *yaml.Node, key, text string) {
	v := value(m, key)
	if v == nil {
		ed.insert(m, key, text)
		return
	}
	if v.Kind != yaml.ScalarNode {
		ed.fail(v, "%s is not a single value", key)
		return
	}
	if v.Value == text {
		return
	}
	if v.Value == "" {
		ed.fail(v, "%s has no value; write one (any) so the updater can replace it", key)
		return
	}
	start := ed.offset(v.Line, v.Column)
	end, ok := ed.scalarEnd(v, start)
	if !ok {
		ed.fail(v, "%s is written in a form the updater does not rewrite (multi-line or block scalar); write it on one line", key)
		return
	}
	ed.splices = append(ed.splices, splice{start, end, yamlScalar(text, v.Style)})
}

func (ed *editor) insert(m *yaml.Node, key, text string) {
	if m.Style&yaml.FlowStyle != 0 {
		ed.fail(m, "cannot add %s to a {flow} mapping; write it in block style", key)
		return
	}
	last := lastLine(m)
	at := len(ed.src)
	prefix := ""
	if last < len(ed.lines) {
		at = ed.lines[last]
	} else if !bytes.HasSuffix(ed.src, []byte("\n")) {
		prefix = "\n"
	}
	indent := strings.Repeat(" ", m.Content[0].Column-1)
	ed.splices = append(ed.splices, splice{at, at, prefix + indent + key + ": " + yamlScalar(text, 0) + "\n"})
}

func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// scalarEnd finds where a one-line scalar's text ends in the source.
func (ed *editor) scalarEnd(v *yaml.Node, start int) (int, bool) {
	lineEnd := bytes.IndexByte(ed.src[start:], '\n')
	if lineEnd < 0 {
		lineEnd = len(ed.src) - start
	}
	line := ed.src[start : start+lineEnd]
	switch v.Style {
	case 0:
		if strings.Contains(v.Value, "\n") || !bytes.HasPrefix(line, []byte(v.Value)) {
			return 0, false
		}
		return start + len(v.Value), true
	case yaml.DoubleQuotedStyle:
		for i := 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return start + i + 1, true
			}
		}
	case yaml.SingleQuotedStyle:
		for i := 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return start + i + 1, true
			}
		}
	}
	return 0, false
}

var plainSafe = regexp.MustCompile(`^[A-Za-z0-9/][A-Za-z0-9._~/?&=%+@,:-]*$`)

// yamlScalar writes text in style, keeping plain when that is safe YAML.
func yamlScalar(text string, style yaml.Style) string {
	switch {
	case style == yaml.SingleQuotedStyle:
		return "'" + strings.ReplaceAll(text, "'", "''") + "'"
	case style == yaml.DoubleQuotedStyle || !plainSafe.MatchString(text) || looksTyped(text):
		return strconv.Quote(text)
	}
	return text
}

// looksTyped is true for plain text YAML would read as a number, bool or
// null, which a version such as 1.0 could be.
func looksTyped(text string) bool {
	var v any
	if yaml.Unmarshal([]byte(text), &v) != nil {
		return true
	}
	s, ok := v.(string)
	return !ok || s != text
}

func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, b := range src {
		if b == '\n' && i+1 < len(src) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset converts yaml.v3's 1-based line and column (in characters) to a
// byte offset.
func (ed *editor) offset(line, col int) int {
	off := ed.lines[line-1]
	for ; col > 1; col-- {
		_, size := utf8.DecodeRune(ed.src[off:])
		off += size
	}
	return off
}

func (ed *editor) apply() []byte {
	slices.SortFunc(ed.splices, func(a, b splice) int { return b.start - a.start })
	out := slices.Clone(ed.src)
	for _, s := range ed.splices {
		out = slices.Concat(out[:s.start], []byte(s.text), out[s.end:])
	}
	return out
}
