package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// kinds are the file kinds of a tree, in the order the reference and
// the JSON Schema list them.
var kinds = []struct {
	name, title string
	typ         reflect.Type
}{
	{"profile", "profiles/<id>.yaml", reflect.TypeFor[Profile]()},
	{"group", "groups/<id>.yaml", reflect.TypeFor[Group]()},
	{"image", "images/<id>.yaml", reflect.TypeFor[Image]()},
	{"settings", "pxeops.yaml (optional)", reflect.TypeFor[Settings]()},
}

// Kinds lists the names JSONSchema takes: profile, group, image, settings.
func Kinds() []string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	return names
}

// Reference returns the Markdown reference of the file format, generated
// from the types' struct tags so the documentation and the decoder cannot
// drift apart. README.md embeds it; a test keeps the two equal.
func Reference() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "#### %s\n\n| field | type | default | meaning |\n|---|---|---|---|\n", htmlEscape(k.title))
		writeFields(&b, k.typ, "")
		b.WriteString("\n")
	}
	return b.String()
}

var htmlEscape = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace

func writeFields(b *strings.Builder, t reflect.Type, prefix string) {
	for _, f := range fileFields(t) {
		path := prefix + yamlName(f)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typeName(ft), defaultOf(f), htmlEscape(f.Tag.Get("doc")))
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
			writeFields(b, ft, path+".")
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			writeFields(b, ft.Elem(), path+"[].")
		}
	}
}

// fileFields are t's fields that files may set: those with a yaml name.
func fileFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) != "" {
			out = append(out, f)
		}
	}
	return out
}

func defaultOf(f reflect.StructField) string {
	if d, ok := f.Tag.Lookup("default"); ok {
		return "`" + d + "`"
	}
	return ""
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case t == reflect.TypeFor[Share]():
		return "percentage"
	case t.Kind() == reflect.Struct:
		return "mapping"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "list of mappings"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface:
		return "mapping (any values)"
	case t.Kind() == reflect.Map:
		return "mapping of strings"
	}
	return t.Kind().String()
}

// SchemaURI is the JSON Schema dialect JSONSchema writes.
const SchemaURI = "https://json-schema.org/draft/2020-12/schema"

// JSONSchema returns a JSON Schema (draft 2020-12) of the file kind
// named (one of Kinds), or of any of them for "": generated from the
// same types and tags as Reference, for editors that validate YAML as
// it is typed (yaml-language-server). It checks what can be checked
// field by field: names, types, required fields; check does the rest
// (references, selectors, templates). A string field also takes a
// number, as the decoder reads any scalar as text.
func JSONSchema(kind string) ([]byte, error) {
	defs := map[string]any{}
	var all []any
	root := map[string]any{"$schema": SchemaURI}
	for _, k := range kinds {
		s := structSchema(k.typ)
		s["title"] = k.title
		defs[k.name] = s
		ref := map[string]any{"$ref": "#/$defs/" + k.name}
		all = append(all, ref)
		if k.name == kind {
			root["title"] = "pxeops " + k.title
			root["$ref"] = ref["$ref"]
		}
	}
	switch {
	case kind == "":
		root["title"] = "pxeops config file (profile, group, image or pxeops.yaml)"
		root["anyOf"] = all
	case root["$ref"] == nil:
		return nil, fmt.Errorf("unknown kind %q; kinds: %s", kind, strings.Join(Kinds(), ", "))
	}
	root["$defs"] = defs
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "profiles/<id>.yaml" reads as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fileFields(t) {
		s := typeSchema(f.Type)
		if doc := f.Tag.Get("doc"); doc != "" {
			s["description"] = doc
			if strings.Contains(doc, "Required.") {
				required = append(required, yamlName(f))
			}
		}
		if d, ok := f.Tag.Lookup("default"); ok {
			s["default"] = typedDefault(f.Type, d)
		}
		props[yamlName(f)] = s
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		s["required"] = required
	}
	return s
}

// typeSchema is what the decoder accepts for a value of type t.
func typeSchema(t reflect.Type) map[string]any {
	orNull := func(s map[string]any) map[string]any {
		s["type"] = []string{s["type"].(string), "null"}
		return s
	}
	switch {
	case t == reflect.TypeFor[Duration]():
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`}
	case t == reflect.TypeFor[Share]():
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "number", "minimum": 0, "maximum": 100},
			map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]{1,2})?%$`},
		}}
	case t.Kind() == reflect.Pointer:
		return orNull(typeSchema(t.Elem()))
	case t.Kind() == reflect.Struct:
		return structSchema(t)
	case t.Kind() == reflect.Slice:
		return orNull(map[string]any{"type": "array", "items": typeSchema(t.Elem())})
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface:
		return orNull(map[string]any{"type": "object"})
	case t.Kind() == reflect.Map:
		return orNull(map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem())})
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() == reflect.String:
		return map[string]any{"type": []string{"string", "number", "null"}}
	}
	panic("schema: no JSON Schema for " + t.String())
}

func typedDefault(t reflect.Type, d string) any {
	if t.Kind() == reflect.Bool {
		b, err := strconv.ParseBool(d)
		if err != nil {
			panic("schema: bad bool default " + d)
		}
		return b
	}
	return d
}
