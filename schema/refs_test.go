package schema

import (
	"fmt"
	"testing"
)

func TestFieldRefs(t *testing.T) {
	for _, c := range []struct {
		text string
		want string
		ok   bool
	}{
		{"x={{ .MAC }}", "[[MAC]]", true},
		{"{{ .ServerURL }}/ignition?mac={{ .MAC }}&r={{ .Labels.rack }}", "[[ServerURL] [MAC] [Labels rack]]", true},
		{"{{ if .Metadata.debug }}debug{{ else }}{{ .Hostname }}{{ end }}", "[[Metadata debug] [Hostname]]", true},
		{"{{ printf \"%s-%s\" .Group .Serial }}", "[[Group] [Serial]]", true},
		{"{{ . }}", "", false},
		{"{{ with .Metadata }}{{ .x }}{{ end }}", "", false},
		{"{{ range .Labels }}{{ . }}{{ end }}", "", false},
		{"{{ $m := .MAC }}{{ $m }}", "", false},
		{"{{ .Labels }}", "[[Labels]]", true},
	} {
		tmpl, err := parseTemplate("t", c.text)
		if err != nil {
			t.Fatal(err)
		}
		refs, ok := fieldRefs(tmpl)
		if ok != c.ok || (ok && fmt.Sprint(refs) != c.want) {
			t.Errorf("%s: refs %v, ok %v; want %s, %v", c.text, refs, ok, c.want, c.ok)
		}
	}
}
