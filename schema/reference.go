package schema

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference returns the Markdown reference of the file format, generated
// from the types' struct tags so the documentation and the decoder cannot
// drift apart. README.md embeds it; a test keeps the two equal.
func Reference() string {
	var b strings.Builder
	for _, s := range []struct {
		title string
		typ   reflect.Type
	}{
		{"profiles/&lt;id&gt;.yaml", reflect.TypeFor[Profile]()},
		{"groups/&lt;id&gt;.yaml", reflect.TypeFor[Group]()},
		{"images/&lt;id&gt;.yaml", reflect.TypeFor[Image]()},
		{"pxeops.yaml (optional)", reflect.TypeFor[Settings]()},
	} {
		fmt.Fprintf(&b, "#### %s\n\n| field | type | default | meaning |\n|---|---|---|---|\n", s.title)
		writeFields(&b, s.typ, "")
		b.WriteString("\n")
	}
	return b.String()
}

func writeFields(b *strings.Builder, t reflect.Type, prefix string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		path := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typeName(ft), defaultOf(f), strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(f.Tag.Get("doc")))
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
			writeFields(b, ft, path+".")
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			writeFields(b, ft.Elem(), path+"[].")
		}
	}
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
