package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/template"
)

// The template functions pxeops adds to text/template's builtins. Names
// and argument order follow sprig (github.com/Masterminds/sprig), the
// library most Go template users know, but only this subset exists: no
// env, random, crypto-key or network functions, so a template's output
// depends on the tree and the machine alone. They are written here rather
// than taken from sprig because each must count what it builds into the
// run's budget, and sprig's map would bring its dozen dependencies for
// ten short functions. Every one that builds a string goes through
// budget.build.
//
// funcs binds the functions to the run's budget b.
func (b *budget) funcs() template.FuncMap {
	str := func(grow int, f func(string) string) func(string) (string, error) {
		return func(s string) (string, error) { return b.build(grow*len(s)+2, func() string { return f(s) }) }
	}
	return template.FuncMap{
		"b64enc": str(2, func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }),
		"b64dec": func(s string) (string, error) {
			if err := b.spend(len(s)); err != nil {
				return "", err
			}
			out, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("b64dec: %w", err)
			}
			return string(out), nil
		},
		"toJson": func(v any) (string, error) {
			var out string
			var err error
			_, berr := b.build(0, func() string { out, err = toJSON(v); return out })
			return out, cmpErr(berr, err)
		},
		"quote":  str(6, func(s string) string { q, _ := toJSON(s); return q }),
		"squote": str(2, func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }),
		"dataurl": func(s string) (string, error) {
			return b.build(3*len(s)+6, func() string { return "data:," + percentEscape(s, "") })
		},
		"default": func(def any, given ...any) any {
			if len(given) == 0 || isEmpty(given[0]) {
				return def
			}
			return given[0]
		},
		"join": func(sep string, list any) (string, error) {
			items, err := listOf(list)
			if err != nil {
				return "", fmt.Errorf("join: %w", err)
			}
			return b.build(len(sep)*len(items), func() string {
				parts := make([]string, len(items))
				for i, it := range items {
					parts[i] = fmt.Sprint(it)
				}
				return strings.Join(parts, sep)
			})
		},
		"upper": str(3, strings.ToUpper),
		"lower": str(3, strings.ToLower),
		"trim":  str(1, strings.TrimSpace),
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// toJSON is v as compact JSON that every YAML parser reads too: HTML
// characters stay as they are (Ignition and cloud-init are no browsers),
// and a nil list or mapping is [] or {}, not null, so an empty
// .Metadata list keeps its type.
func toJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(nonNil(reflect.ValueOf(v))); err != nil {
		return "", fmt.Errorf("toJson: %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// nonNil copies v with nil slices and maps made empty; other values are
// returned as they are. Template data is a tree (YAML aliases are
// expanded at decode), so the walk ends.
func nonNil(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Interface {
			return nonNil(v.Elem())
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			break // []byte marshals as base64
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = nonNil(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			break
		}
		out := make(map[string]any, v.Len())
		for _, k := range v.MapKeys() {
			out[k.String()] = nonNil(v.MapIndex(k))
		}
		return out
	}
	return v.Interface()
}

// isEmpty is sprig's notion for default: zero values, and empty lists,
// mappings and strings.
func isEmpty(v any) bool {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return true
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return rv.IsZero()
}

func listOf(list any) ([]any, error) {
	rv := reflect.ValueOf(list)
	if !rv.IsValid() {
		return nil, nil
	}
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, errors.New("expected a list, got " + rv.Kind().String())
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, nil
}

// percentEscape escapes every byte of s but RFC 3986's unreserved ones
// and those in keep as %XX: safe in a data: URL (RFC 2397, where '+' is
// a plus and a space must be %20, unlike urlquery's) and in a query.
func percentEscape(s, keep string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~"+keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// MachineQuery is the query naming m's values for keys, in the order
// /boot.ipxe sends them: mac, uuid, hostname, serial, arch, then labels by
// name; keys nil: all of m's values. ':' stays as is, so a MAC reads as
// it does in logs.
func MachineQuery(m *Machine, keys []string) string {
	want := func(k string) bool { return keys == nil || slices.Contains(keys, k) }
	var parts []string
	add := func(k, v string) {
		if v != "" && want(k) {
			parts = append(parts, percentEscape(k, "")+"="+percentEscape(v, ":"))
		}
	}
	for _, k := range []string{KeyMAC, KeyUUID, KeyHostname, KeySerial, KeyArch} {
		add(k, m.Value(k))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		add(k, m.Labels[k])
	}
	return strings.Join(parts, "&")
}
