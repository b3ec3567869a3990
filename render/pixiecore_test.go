package render

import (
	"strings"
	"testing"
	"text/template"

	"github.com/pxeops/pxeops/schema"
)

// pixiecoreTemplate is what Pixiecore does with a command line: parse it
// with text/template, its URL function at hand, and execute it.
func pixiecoreTemplate(s string) (string, error) {
	t, err := template.New("cmdline").Funcs(template.FuncMap{"URL": func(u string) string { return "proxied:" + u }}).Parse(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, nil)
	return b.String(), err
}

func TestPixiecoreEscape(t *testing.T) {
	for _, s := range []string{"", "quiet", "a={{b}}", "{{", "}}", "{{{", "{{{{", `x={{ URL "http://h/f" }}`, "{{-", "-}}", `{{"{{"}}`, "a}}b{{c"} {
		got, err := pixiecoreTemplate(schema.EscapeTemplate(s))
		if err != nil || got != s {
			t.Errorf("Pixiecore's template of schema.EscapeTemplate(%q) = %q, %v; want it back", s, got, err)
		}
	}
}

func FuzzPixiecoreEscape(f *testing.F) {
	for _, s := range []string{"console=ttyS0 quiet", "a={{b}}", "{{{", `{{ URL "x" }}`, "{{/* c */}}", "{{- x -}}", "}}{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := pixiecoreTemplate(schema.EscapeTemplate(s))
		if err != nil || got != s {
			t.Fatalf("Pixiecore's template of schema.EscapeTemplate(%q) = %q, %v; want it back", s, got, err)
		}
	})
}
