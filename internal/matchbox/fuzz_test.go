package matchbox

import (
	"slices"
	"strings"
	"testing"
	"text/template/parse"

	"gopkg.in/yaml.v3"
)

// texts lists a template's text nodes, or ok false when it does not parse.
func texts(src string) (out []string, ok bool) {
	t := parse.New("t")
	t.Mode = parse.ParseComments | parse.SkipFuncCheck
	set := map[string]*parse.Tree{}
	if _, err := t.Parse(src, "", "", set); err != nil {
		return nil, false
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.TextNode:
			out = append(out, string(n.Text))
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.IfNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.List)
			walk(n.ElseList)
		}
	}
	for _, name := range []string{"t"} {
		if set[name] != nil {
			walk(set[name].Root)
		}
	}
	return out, true
}

// The translation edits references only: what parses still parses, and
// every text node is as it was.
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		"hostname: {{ .hostname }}\n",
		"{{ .request.query.mac }} {{ $.request.query.foo }} {{ .k8s.version }}",
		"{{- with .k8s }}{{ .channel }}{{ else }}{{ .mac }}{{ end -}}",
		"{{ range $i, $k := .keys }}{{ $i }}={{ $k }} {{ $.uuid }}{{ end }}",
		"{{ if eq .request.query.env \"prod\" }}x{{ end }}{{/* c */}}",
		"{{ .request.raw_query }} {{ template \"x\" . }}{{ define \"x\" }}{{ .serial }}{{ end }}",
		"{{ (.mac) }} {{ printf \"%s\" .rack | print }} {{ .mac.foo }}",
		"{{ if .mac }}",
	} {
		f.Add(s, "rack")
	}
	f.Fuzz(func(t *testing.T, src, label string) {
		keys := dataKeys{machine: map[string]bool{"mac": true}, labels: map[string]bool{label: true}, metadata: map[string]bool{"hostname": true}}
		out, found, _ := translate("f", src, keys)
		before, ok := texts(src)
		after, ok2 := texts(out)
		if ok != ok2 {
			t.Fatalf("parses before %v, after %v:\n%q\n%q", ok, ok2, src, out)
		}
		if !ok && out != src {
			t.Fatalf("an unparsable template was changed: %q -> %q", src, out)
		}
		if !slices.Equal(before, after) {
			t.Fatalf("text changed:\n%q\n%q", before, after)
		}
		for _, fd := range found {
			if fd.File != "f" || fd.Line < 0 || fd.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("finding %+v out of the file", fd)
			}
		}
	})
}

// Whatever the JSON, Convert neither panics nor writes YAML that does
// not parse, and reports only about files it was given.
func FuzzConvert(f *testing.F) {
	f.Add(`{"id":"p","boot":{"kernel":"/assets/k","initrd":["/assets/i"],"args":["initrd=i","a=http://m:8080/ignition?mac=${mac}"]},"ignition_id":"x.yaml","cloud_id":"c"}`,
		`{"id":"g","profile":"p","selector":{"mac":"52:54:00:00:00:01","os":"x"},"metadata":{"os":"y","n":1.5,"k":{"a":[1,2]}}}`,
		"variant: flatcar\nversion: 1.0.0\n# {{ .os }} {{ .request.query.a }}\n")
	f.Add(`{"boot":{"cmdline":{"a":"","b":"{{x}}"}},"generic_id":"x.yaml"}`, `{"profile":"nope"}`, "{{ .")
	f.Add(`[1]`, `{"selector":null,"metadata":null}`, "")
	f.Fuzz(func(t *testing.T, prof, grp, tmpl string) {
		in := map[string][]byte{
			"profiles/p.json": []byte(prof),
			"groups/g.json":   []byte(grp),
			"ignition/x.yaml": []byte(tmpl),
			"cloud/c":         []byte(tmpl),
			"generic/x.yaml":  []byte(tmpl),
		}
		res := Convert(in)
		for name, data := range res.Files {
			if strings.HasPrefix(name, "templates/") {
				continue
			}
			var v any
			if err := yaml.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s does not parse: %v\n%s", name, err, data)
			}
		}
		for _, fd := range res.Report {
			if _, ok := in[fd.File]; !ok {
				t.Fatalf("finding about a file not given: %v", fd)
			}
		}
	})
}
