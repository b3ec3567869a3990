package updater

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/pxeops/pxeops/schema"
)

// ImageEdit is what the updater changes in images/<id>.yaml.
type ImageEdit struct {
	// Version, Kernel and Initrd are the pinned side; an empty Version
	// leaves all three as they are (a rollout opens beside them).
	Version string
	Kernel  FileRef
	Initrd  FileRef // the first initrd; any further ones are the operator's
	// Rollout, when set, is written as the rollout block: added below the
	// file's last key, or its values replaced where one is there.
	Rollout *RolloutEdit
	// RemoveRollout deletes the rollout block, its lines and nothing else.
	RemoveRollout bool
}

// RolloutEdit is the rollout block the updater writes.
type RolloutEdit struct {
	Version string
	Share   schema.Share
	Kernel  FileRef
	Initrd  FileRef // the first initrd, as on the pinned side
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
	if e.Rollout != nil && e.RemoveRollout {
		return nil, fmt.Errorf("an edit both writes and removes the rollout")
	}
	ed := &editor{src: src, lines: lineStarts(src)}
	root := doc.Content[0]
	if e.Version != "" {
		ed.files(root, "", e.Version, e.Kernel, e.Initrd)
	}
	rollout := value(root, "rollout")
	switch {
	case e.Rollout != nil && rollout == nil:
		ed.insertRollout(root, *e.Rollout)
	case e.Rollout != nil && rollout.Kind != yaml.MappingNode:
		ed.fail(rollout, "rollout is not a mapping")
	case e.Rollout != nil:
		ed.set(rollout, "share", e.Rollout.Share.String())
		ed.files(rollout, "rollout.", e.Rollout.Version, e.Rollout.Kernel, e.Rollout.Initrd)
	case e.RemoveRollout && rollout != nil:
		ed.removeKey(root, "rollout")
	}
	if ed.err != nil {
		return nil, ed.err
	}
	out := ed.apply()
	// Every edit is checked by reading the result back: it must hold the
	// new values and every other value exactly as before, or it is not
	// made (a form the splices misjudged is refused, never written).
	if err := checkEdit(src, out, e); err != nil {
		return nil, err
	}
	return out, nil
}

// files sets version, kernel and the first initrd of m: the image itself,
// or its rollout block (where is the prefix errors name).
func (ed *editor) files(m *yaml.Node, where, version string, kernel, initrd FileRef) {
	ed.set(m, "version", version)
	if k := ed.mapping(m, "kernel"); k != nil {
		ed.set(k, "url", kernel.URL)
		ed.set(k, "sha256", kernel.SHA256)
	}
	if seq := value(m, "initrd"); seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		ed.fail(m, "%sinitrd is not a list of files", where)
	} else if first := seq.Content[0]; first.Kind != yaml.MappingNode {
		ed.fail(first, "%sinitrd[0] is not a mapping with url and sha256", where)
	} else {
		ed.set(first, "url", initrd.URL)
		ed.set(first, "sha256", initrd.SHA256)
	}
}

// insertRollout adds the rollout block below the root mapping's last
// line, in block style at the root's indentation.
func (ed *editor) insertRollout(root *yaml.Node, r RolloutEdit) {
	if root.Style&yaml.FlowStyle != 0 || len(root.Content) == 0 {
		ed.fail(root, "cannot add rollout to a {flow} mapping; write the file in block style")
		return
	}
	at, prefix := ed.below(root)
	ind := strings.Repeat(" ", root.Content[0].Column-1)
	var b strings.Builder
	b.WriteString(prefix + ind + "rollout:\n")
	fmt.Fprintf(&b, "%s  version: %s\n%s  share: %s\n", ind, yamlScalar(r.Version, 0), ind, yamlScalar(r.Share.String(), 0))
	fmt.Fprintf(&b, "%s  kernel:\n%s    url: %s\n%s    sha256: %s\n", ind, ind, yamlScalar(r.Kernel.URL, 0), ind, yamlScalar(r.Kernel.SHA256, 0))
	fmt.Fprintf(&b, "%s  initrd:\n%s    - url: %s\n%s      sha256: %s\n", ind, ind, yamlScalar(r.Initrd.URL, 0), ind, yamlScalar(r.Initrd.SHA256, 0))
	ed.splices = append(ed.splices, splice{at, at, b.String()})
}

// removeKey deletes key and its value: the lines from the key's through
// the value's last, which must hold nothing else.
func (ed *editor) removeKey(m *yaml.Node, key string) {
	if m.Style&yaml.FlowStyle != 0 {
		ed.fail(m, "cannot remove %s from a {flow} mapping; write it in block style", key)
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != key {
			continue
		}
		start := ed.lines[k.Line-1]
		if strings.TrimSpace(string(ed.src[start:ed.offset(k.Line, k.Column)])) != "" {
			ed.fail(k, "%s does not start its line; write it on a line of its own", key)
			return
		}
		end := len(ed.src)
		if last := lastLine(v); last < len(ed.lines) {
			end = ed.lines[last]
		}
		if i+2 < len(m.Content) && m.Content[i+2].Line <= lastLine(v) {
			ed.fail(k, "%s shares a line with the key after it", key)
			return
		}
		ed.splices = append(ed.splices, splice{start, end, ""})
		return
	}
}

// below is where text goes to follow mapping m's last line, and the
// newline to put first when the file does not end in one.
func (ed *editor) below(m *yaml.Node) (at int, prefix string) {
	last := lastLine(m)
	if last < len(ed.lines) {
		return ed.lines[last], ""
	}
	if !bytes.HasSuffix(ed.src, []byte("\n")) {
		return len(ed.src), "\n"
	}
	return len(ed.src), ""
}

// checkEdit reads before and after back as plain values: after must be
// before with exactly e's changes.
func checkEdit(before, after []byte, e ImageEdit) error {
	var want, got map[string]any
	if err := yaml.Unmarshal(before, &want); err != nil {
		return err
	}
	if err := yaml.Unmarshal(after, &got); err != nil {
		return fmt.Errorf("the edited file does not read back (%v); edit it by hand", err)
	}
	setFiles := func(m map[string]any, version string, kernel, initrd FileRef) {
		m["version"] = version
		if k, ok := m["kernel"].(map[string]any); ok {
			k["url"], k["sha256"] = kernel.URL, kernel.SHA256
		}
		if l, ok := m["initrd"].([]any); ok && len(l) > 0 {
			if f, ok := l[0].(map[string]any); ok {
				f["url"], f["sha256"] = initrd.URL, initrd.SHA256
			}
		}
	}
	if e.Version != "" {
		setFiles(want, e.Version, e.Kernel, e.Initrd)
	}
	switch r, open := want["rollout"].(map[string]any); {
	case e.Rollout != nil && !open:
		want["rollout"] = map[string]any{"version": e.Rollout.Version, "share": e.Rollout.Share.String(),
			"kernel": map[string]any{"url": e.Rollout.Kernel.URL, "sha256": e.Rollout.Kernel.SHA256},
			"initrd": []any{map[string]any{"url": e.Rollout.Initrd.URL, "sha256": e.Rollout.Initrd.SHA256}}}
	case e.Rollout != nil:
		r["share"] = e.Rollout.Share.String()
		setFiles(r, e.Rollout.Version, e.Rollout.Kernel, e.Rollout.Initrd)
	case e.RemoveRollout:
		delete(want, "rollout")
	}
	if !reflect.DeepEqual(plain(want), plain(got)) {
		return fmt.Errorf("the edit would change more than the updater's values (a form it does not rewrite); edit the file by hand")
	}
	return nil
}

// plain makes every scalar its text, so 1 and "1" compare equal: the
// updater writes text, and YAML may read it back as a number.
func plain(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	case nil:
		return ""
	}
	return fmt.Sprint(v)
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
	at, prefix := ed.below(m)
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
