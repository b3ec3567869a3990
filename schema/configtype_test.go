package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	ignition "github.com/coreos/ignition/v2/config"
)

// Positions in the rendered text map back to the template: text to the
// same text, however often a range repeats it; an action's output to
// where the action stands.
func TestSourceMap(t *testing.T) {
	src := "a: {{ .Hostname }}\nlist:\n{{- range .Metadata.xs }}\n  - item-{{ . }}\n{{- end }}\ntail: x\n"
	r, err := parseTemplate("t", src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m := newSrcMap(r, &buf)
	data := &TemplateData{Machine: Machine{Hostname: "sample"}, Metadata: map[string]any{"xs": []any{1, 2}}}
	if err := r.execute(context.Background(), m, data, configLimits, nil); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if out != "a: sample\nlist:\n  - item-1\n  - item-2\ntail: x\n" {
		t.Fatalf("rendered %q", out)
	}
	for _, c := range []struct {
		line, col     int // in the rendered text
		wLine, wCol   int // in the template
		what          string
		renderedCheck string
	}{
		{1, 1, 1, 1, "text before an action", "a"},
		{1, 4, 1, 4, "an action's output, at the action", "sample"},
		{2, 1, 2, 1, "text after the action", "list"},
		{3, 5, 4, 5, "the first iteration", "item-1"},
		{4, 5, 4, 5, "the second iteration, at the same line", "item-2"},
		{4, 10, 4, 10, "the value of the second iteration, at its action", "2"},
		{5, 3, 6, 3, "after the range", "il"},
	} {
		lines := strings.Split(out, "\n")
		if !strings.HasPrefix(lines[c.line-1][c.col-1:], c.renderedCheck) {
			t.Fatalf("%s: rendered %d:%d is not %q", c.what, c.line, c.col, c.renderedCheck)
		}
		if l, col := m.sourcePos(buf.Bytes(), src, c.line, c.col); l != c.wLine || col != c.wCol {
			t.Errorf("%s: rendered %d:%d maps to %d:%d, want %d:%d", c.what, c.line, c.col, l, col, c.wLine, c.wCol)
		}
	}
	if l, c := m.sourcePos(buf.Bytes(), src, 99, 1); l != 0 || c != 0 {
		t.Errorf("a line past the end maps to %d:%d", l, c)
	}
}

// What /config serves for a Butane config that Ignition refuses says
// where in the rendered text, and what.
func TestConfigErrorMessage(t *testing.T) {
	_, issues, err := validateConfig(ConfigButane, []byte("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: etc/x\n      mode: 644\n"))
	if err == nil || err.Error() != "butane: rendered line 5:13 (storage.files.0.path) path not absolute" {
		t.Errorf("err = %v", err)
	}
	warned := false
	for _, is := range issues {
		warned = warned || (is.warn && strings.Contains(is.msg, "octal"))
	}
	if !warned {
		t.Errorf("the decimal mode's warning is missing: %+v", issues)
	}
	out, issues, err := validateConfig(ConfigIgnition, []byte("ignition: {version: 3.4.0}\nstorage:\n  files: [{path: /x}]\n"))
	if err != nil || len(issues) != 0 || string(out) != `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/x"}]}}` {
		t.Errorf("a valid YAML Ignition config: %s, %v, %v", out, issues, err)
	}
}

// FuzzConfig: whatever a template renders, translating and validating it
// never panics, reports positions inside the rendered text, and what it
// serves is JSON that Ignition reads without error.
func FuzzConfig(f *testing.F) {
	for _, seed := range []struct{ typ, text string }{
		{ConfigButane, "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/hostname\n      mode: 0644\n      contents:\n        inline: h\n"},
		{ConfigButane, "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: etc/x\n      contents:\n        local: x\n"},
		{ConfigButane, "variant: flatcar\nversion: 1.1.0\nsystemd:\n  units:\n    - name: a.service\n      contents: \"[Unit]\\nFoo\"\n"},
		{ConfigButane, "variant: fcos\nversion: 9.0.0\n"},
		{ConfigButane, "a: &a [x,x,x,x]\nb: [*a,*a,*a]\n"},
		{ConfigIgnition, `{"ignition":{"version":"3.4.0"},"storage":{"file":[{"path":"/x"}]}}`},
		{ConfigIgnition, "ignition:\n  version: 3.9.0\n"},
		{ConfigIgnition, `{"ignition":{"version":"2.2.0"}}`},
		{ConfigIgnition, "ignition: {version: 3.0.0}\npasswd: {users: [{name: core, sshAuthorizedKeys: [k]}]}\n"},
	} {
		f.Add(seed.typ == ConfigButane, seed.text)
	}
	f.Fuzz(func(t *testing.T, isButane bool, text string) {
		typ := ConfigIgnition
		if isButane {
			typ = ConfigButane
		}
		out, issues, err := validateConfig(typ, []byte(text))
		// YAML breaks lines at \r too: an upper bound.
		lines := strings.Count(text, "\n") + strings.Count(text, "\r") + 1
		for _, is := range issues {
			if is.line < 0 || is.line > lines || is.msg == "" {
				t.Fatalf("issue %+v: outside the %d lines of the text", is, lines)
			}
		}
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("served %q: not JSON", out)
		}
		var head struct{ Ignition struct{ Version string } }
		_ = json.Unmarshal(out, &head)
		if strings.HasPrefix(head.Ignition.Version, "2.") {
			return
		}
		if _, _, err := ignition.Parse(out); err != nil {
			t.Fatalf("served %q, which Ignition refuses: %v", out, err)
		}
	})
}

// A Butane config that only the secrets' values break is refused without
// Butane's own words, which quote the rendered text.
func TestButaneSecretValues(t *testing.T) {
	tree := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nconfig: {template: c.bu, type: butane}\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\n")},
		"templates/c.bu": {Data: []byte("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/token\n" +
			"      contents:\n        inline: {{ secret \"tok\" }}\n")},
	}
	for _, c := range []struct {
		value  string
		errors int
		want   string
	}{
		{"fine", 0, ""},
		{"leaked: [value", 1, "only with the secrets' values"},
	} {
		_, diags := LoadWith(context.Background(), tree, nil, mustSecrets(t, map[string]string{"tok": c.value}))
		out := fmt.Sprint(diags)
		if diags.Errors() != c.errors || !strings.Contains(out, c.want) || strings.Contains(out, "leaked") {
			t.Errorf("value %q: %v", c.value, diags)
		}
	}
}
