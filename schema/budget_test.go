package schema

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"text/template"
	"time"
)

// Templates that would run forever or fill memory stop at a limit, with
// an error naming it and where in the template the run was.
func TestTemplateBudgets(t *testing.T) {
	fanOut := ""
	for i := range 30 { // 2^30 calls without recursion
		fanOut += `{{define "t` + string(rune('a'+i)) + `"}}{{template "t` + string(rune('b'+i)) + `"}}{{template "t` + string(rune('b'+i)) + `"}}{{end}}`
	}
	fanOut += `{{define "t` + string(rune('a'+30)) + `"}}x{{end}}{{template "ta"}}`
	for _, c := range []struct {
		name, text string
		lim        Limits
		want       string
		line, col  int
	}{
		{"huge range", "x={{ range 1000000000000000 }}{{ end }}", argLimits, "ran past 100000 steps", 1, 12},
		{"range deep in the text", "a\nb\n  {{ range 1000000000000000 }}{{ end }}", argLimits, "steps", 3, 12},
		{"nested ranges", "{{range 1000}}{{range 1000}}{{end}}{{end}}", configLimits, "steps", 1, 23},
		{"fan-out of template calls", fanOut, configLimits, "steps", 0, 0},
		{"output", `{{range 100}}{{printf "%01000d" 1}}{{end}}`, argLimits, "output exceeds 16384 bytes", 1, 16},
		{"a width that builds a big string", `{{printf "%0999999d%0999999d" 1 2}}`, argLimits, "builds more than 1048576 bytes", 1, 3},
		{"doubling a string", `{{$x := "0123456789"}}{{range 40}}{{$x = printf "%s%s" $x $x}}{{end}}`, configLimits, "builds more than", 1, 37},
		{"escaping again and again", `{{$x := "<<<<<<<<"}}{{range 40}}{{$x = js $x}}{{end}}`, configLimits, "builds more than", 1, 35},
		{"print of many copies", `{{$x := printf "%0100000d" 1}}{{range 1000}}{{$y := print $x $x $x}}{{end}}`, configLimits, "builds more than", 1, 47},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseTemplate("t", c.text)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = r.Execute(context.Background(), io.Discard, &TemplateData{}, c.lim)
			be, ok := errors.AsType[*BudgetError](err)
			if !ok {
				t.Fatalf("err = %v, want a budget error", err)
			}
			if !strings.Contains(templateErrMsg(err), c.want) {
				t.Errorf("message %q, want %q", templateErrMsg(err), c.want)
			}
			if c.line > 0 && (be.Line != c.line || be.Col != c.col) {
				t.Errorf("at %d:%d, want %d:%d", be.Line, be.Col, c.line, c.col)
			}
			if took := time.Since(start); took > c.lim.Time+time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}

// Within budget, a template renders exactly as text/template renders it.
func TestBudgetedTemplateRendersAsTextTemplate(t *testing.T) {
	data := &TemplateData{Machine: Machine{MAC: "52:54:00:12:34:56", Labels: map[string]string{"rack": "r1"}},
		Metadata: map[string]any{"nodes": []any{"a", "b", "c"}, "n": 3, "s": "<x & y>"}, Group: "g"}
	for _, text := range []string{
		"plain",
		"mac={{ .MAC }} rack={{ .Labels.rack }}",
		`{{range $i, $n := .Metadata.nodes}}{{if $i}},{{end}}{{$n}}{{end}}`,
		`{{define "n"}}[{{.}}]{{end}}{{range .Metadata.nodes}}{{template "n" .}}{{else}}none{{end}}`,
		`{{printf "%05d %s %v" .Metadata.n .Group .Metadata.nodes}} {{print 1 2 "x"}} {{println "a"}}`,
		`{{html .Metadata.s}} {{js .Metadata.s}} {{urlquery .Metadata.s}} {{len .Metadata.nodes}} {{index .Metadata.nodes 1}}`,
		`{{with .Metadata.s}}{{.}}{{end}} {{if eq .Group "g"}}yes{{end}} {{range 3}}{{.}}{{end}}`,
		`{{$x := .MAC}}{{$x}} {{.MAC | printf "%q"}}`,
	} {
		want, err := template.New("t").Option("missingkey=error").Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		var wb, gb strings.Builder
		if err := want.Execute(&wb, data); err != nil {
			t.Fatal(err)
		}
		r, err := parseTemplate("t", text)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second run reuses the pooled copy
			gb.Reset()
			if err := r.Execute(context.Background(), &gb, data, argLimits); err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			if gb.String() != wb.String() {
				t.Errorf("%s: got %q, want %q", text, gb.String(), wb.String())
			}
		}
	}
}

func TestTemplateMayNotAssignDollar(t *testing.T) {
	if _, err := parseTemplate("t", "{{ $ = 1 }}{{ .MAC }}"); err == nil || !strings.Contains(err.Error(), "assigning to $") {
		t.Errorf("err = %v", err)
	}
}

// A run stops soon after its context ends, whatever the template does.
func TestTemplateStopsWithContext(t *testing.T) {
	r, err := parseTemplate("t", `{{range 1000000000}}{{$x := printf "%0100d" 1}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	lim := configLimits
	lim.Steps, lim.Time = 1<<62, time.Hour
	start := time.Now()
	err = r.Execute(ctx, io.Discard, &TemplateData{}, lim)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("stopped after %s", took)
	}
}

// The time limit holds where the step limit is out of reach.
func TestTemplateTimeLimit(t *testing.T) {
	r, err := parseTemplate("t", `{{range 1000000000}}{{$x := printf "%0100d" 1}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	lim := configLimits
	lim.Steps, lim.Time = 1<<62, 100*time.Millisecond
	err = r.Execute(context.Background(), io.Discard, &TemplateData{}, lim)
	if !strings.Contains(templateErrMsg(err), "ran longer than 100ms") {
		t.Errorf("err = %v", err)
	}
}

// FuzzTemplate: any template text either fails to parse, stops at a
// budget, or renders exactly what text/template renders.
func FuzzTemplate(f *testing.F) {
	for _, seed := range []string{
		"console=ttyS0 pxeops.mac={{ .MAC }}",
		"ignition.config.url={{ .ServerURL }}/ignition?mac={{ .MAC }}",
		"{{ range $i, $n := .Metadata.nodes }}{{ if $i }},{{ end }}{{ $n }}{{ end }}",
		`{{ define "x" }}{{ . }}{{ end }}{{ template "x" .Group }}`,
		`{{ printf "%05d" 3 | html }}{{ js "<\\>" }}{{ urlquery "a b" }}`,
		"{{ range 1000000000000000 }}{{ end }}",
		`{{ $x := "ab" }}{{ range 30 }}{{ $x = print $x $x }}{{ end }}`,
		"{{ with .Labels.rack }}{{ . }}{{ else }}none{{ end }}",
		`{{ toJson .Metadata }} {{ b64enc "x" | b64dec | upper | quote }} {{ dataurl "a b" }}`,
		`{{ join "," .Metadata.nodes | squote }} {{ index .Metadata "m" | default 7 }} {{ trim " x " | lower }}`,
	} {
		f.Add(seed)
	}
	data := &TemplateData{Machine: Machine{MAC: "52:54:00:12:34:56", Labels: map[string]string{"rack": "r1"}},
		Metadata: map[string]any{"nodes": []any{"a", "b"}, "n": 2}, Group: "g", ServerURL: SampleServerURL}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := parseTemplate("t", text)
		if err != nil {
			return
		}
		lim := Limits{Of: "a fuzz run", Output: 1 << 16, Work: 1 << 18, Steps: 10_000, Time: 200 * time.Millisecond}
		var got strings.Builder
		if err := r.Execute(context.Background(), &got, data, lim); err != nil {
			return
		}
		plain := &budget{lim: Limits{Work: math.MaxInt}} // pxeops' functions, unbounded
		std, err := template.New("t").Option("missingkey=error").Funcs(plain.funcs()).Parse(text)
		if err != nil {
			t.Fatalf("parses with budgets, not without: %v", err)
		}
		var want strings.Builder
		if err := std.Execute(&want, data); err != nil {
			t.Fatalf("runs with budgets, fails without: %v", err)
		}
		if got.String() != want.String() {
			t.Fatalf("got %q, text/template %q", got.String(), want.String())
		}
	})
}

// A budget counts what a function can build, not six times everything:
// print of 6 MB of strings fits the 32 MiB a config may build, though
// six times it would not.
func TestPrintCountsWhatItBuilds(t *testing.T) {
	r, err := parseTemplate("t", `{{$x := printf "%01000000d" 1}}{{$y := print $x $x $x $x $x $x}}{{len $y}}`)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := r.Execute(context.Background(), &out, &TemplateData{}, configLimits); err != nil || out.String() != "6000000" {
		t.Errorf("%q, %v", out.String(), err)
	}
}
