package schema

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Bounds on what one YAML file may expand to. They keep alias bombs and
// deep nesting from turning a small file into unbounded memory or stack.
const (
	maxNodes = 100_000
	maxDepth = 32
)

// decoder turns a yaml.Node into Go values strictly: unknown fields,
// duplicate keys, wrong types and aliases that expand too far are errors
// with file:line:col. yaml.v3's own decoder loses either KnownFields or
// positions, so the walk is ours.
type decoder struct {
	file   string
	diags  *Diagnostics
	budget int
	pos    map[string]Pos  // value positions by field path, e.g. "initrd[0].url"
	bad    map[string]bool // paths whose value was rejected, so validation stays quiet about them
	halted bool
}

func newDecoder(file string, diags *Diagnostics) *decoder {
	return &decoder{file: file, diags: diags, budget: maxNodes, pos: map[string]Pos{}, bad: map[string]bool{}}
}

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.diags.errorf(d.at(n), format, args...)
}

// reject reports a value of the wrong type or form at path.
func (d *decoder) reject(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.errorf(n, "%s: "+format, append([]any{field(path)}, args...)...)
}

// scalarDecoder is implemented by types that parse themselves from a scalar.
type scalarDecoder interface {
	decodeScalar(s string) error
}

var (
	scalarDecoderType = reflect.TypeFor[scalarDecoder]()
	anyType           = reflect.TypeFor[any]()
)

// enter resolves aliases and charges the node budget; false means stop.
func (d *decoder) enter(n *yaml.Node, depth int) (*yaml.Node, bool) {
	if d.halted {
		return nil, false
	}
	use := n // report at the alias's use, not at its distant anchor
	for n.Kind == yaml.AliasNode {
		d.budget--
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 {
		d.errorf(use, "document expands to more than %d values (aliases?); simplify the file", maxNodes)
		d.halted = true
		return nil, false
	}
	if depth > maxDepth {
		d.errorf(use, "nesting deeper than %d levels; flatten the structure", maxDepth)
		d.halted = true
		return nil, false
	}
	return n, true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return fmt.Sprintf("the string %q", n.Value)
	}
	return "a document"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	n, ok := d.enter(n, depth)
	if !ok {
		return
	}
	d.pos[path] = d.at(n)
	if v.CanAddr() && v.Addr().Type().Implements(scalarDecoderType) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.reject(n, path, "expected a string, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(scalarDecoder).decodeScalar(n.Value); err != nil {
			d.reject(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, depth)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.reject(n, path, "expected a string, got %s", kindName(n))
			return
		}
		if !isNull(n) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.reject(n, path, "expected true or false, got %s", kindName(n))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.reject(n, path, "expected a list, got %s; write one item per line starting with '- '", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		d.decodeMap(n, v, path, depth)
	case reflect.Interface:
		// A null value (metadata: {x: ~}) is nil, which reflect cannot
		// Set; v is nil already.
		if val := d.freeForm(n, path, depth); val != nil {
			v.Set(reflect.ValueOf(val))
		}
	default:
		panic("schema: decoder does not handle " + v.Type().String())
	}
}

// pairs walks a mapping's key/value pairs, reporting non-string and
// duplicate keys once and passing each good pair on.
func (d *decoder) pairs(n *yaml.Node, path string, depth int, each func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.reject(n, path, "expected a mapping of key: value, got %s", kindName(n))
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, ok := d.enter(n.Content[i], depth+1)
		if !ok {
			return
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.errorf(k, "%s: keys must be strings, got %s", field(path), kindName(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			d.errorf(k, "%s: merge keys (<<) are not supported; write the fields out", field(path))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "duplicate key %q (first at line %d); remove one of them", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		each(k.Value, k, n.Content[i+1])
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	fields := structFields(v.Type())
	d.pairs(n, path, depth, func(key string, k, val *yaml.Node) {
		i, ok := fields[key]
		if !ok {
			d.errorf(k, "unknown field %q%s; %s", key, in(path), suggest(key, v.Type()))
			return
		}
		d.decode(val, v.Field(i), join(path, key), depth+1)
	})
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	d.pairs(n, path, depth, func(key string, k, val *yaml.Node) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, join(path, key), depth+1)
		v.SetMapIndex(reflect.ValueOf(key), e)
	})
}

// freeForm decodes metadata: any YAML the user likes, with typed scalars.
func (d *decoder) freeForm(n *yaml.Node, path string, depth int) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		d.pairs(n, path, depth, func(key string, _, val *yaml.Node) {
			if val, ok := d.enter(val, depth+1); ok {
				d.pos[join(path, key)] = d.at(val)
				m[key] = d.freeForm(val, join(path, key), depth+1)
			}
		})
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			if item, ok := d.enter(item, depth+1); ok {
				s = append(s, d.freeForm(item, fmt.Sprintf("%s[%d]", path, i), depth+1))
			}
		}
		return s
	}
	var out any
	switch n.Tag {
	case "!!null":
		return nil
	case "!!str", "!!binary", "!!timestamp":
		return n.Value
	}
	if err := n.Decode(&out); err != nil {
		d.reject(n, path, "%v", err)
	}
	return out
}

// structFields maps YAML names to field indexes; fields without a yaml tag
// are not part of the file format.
func structFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func suggest(key string, t reflect.Type) string {
	var names []string
	for name := range structFields(t) {
		names = append(names, name)
	}
	slices.Sort(names)
	best, bestDist := "", 3
	for _, name := range names {
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "valid fields: " + strings.Join(names, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func field(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// Duration is a time.Duration written as "30s", "1h".
type Duration time.Duration

func (d *Duration) decodeScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q; write it like 30s, 15m or 1h", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// applyDefaults fills zero fields from their `default` struct tags, so the
// defaults the reference documents are the ones applied.
func applyDefaults(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		def, hasDefault := f.Tag.Lookup("default")
		isScalar := fv.Addr().Type().Implements(scalarDecoderType)
		switch {
		case f.Type.Kind() == reflect.Struct && !isScalar && yamlName(f) != "":
			applyDefaults(fv)
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct && !fv.IsNil():
			applyDefaults(fv.Elem())
		case !hasDefault || !fv.IsZero():
		case isScalar:
			if err := fv.Addr().Interface().(scalarDecoder).decodeScalar(def); err != nil {
				panic("schema: bad default for " + f.Name + ": " + err.Error())
			}
		case f.Type.Kind() == reflect.String:
			fv.SetString(def)
		}
	}
}
