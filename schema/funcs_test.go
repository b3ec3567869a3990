package schema

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func render1(t *testing.T, text string, data *TemplateData) (string, error) {
	t.Helper()
	r, err := parseTemplate("t", text)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	err = r.Execute(context.Background(), &b, data, configLimits)
	return b.String(), err
}

func TestTemplateFuncs(t *testing.T) {
	data := &TemplateData{Metadata: map[string]any{
		"empty": []any{}, "keys": []any{"a", "b"}, "n": 0, "s": `<"x">` + "\n",
	}, Machine: Machine{MAC: "52:54:00:00:00:01"}}
	for _, c := range []struct{ text, want string }{
		{`{{ b64enc "hi there" }}`, "aGkgdGhlcmU="},
		{`{{ b64dec "aGkgdGhlcmU=" }}`, "hi there"},
		{`{{ toJson .Metadata.empty }} {{ toJson .Labels }} {{ toJson .Metadata.keys }}`, `[] {} ["a","b"]`},
		{`{{ toJson .Metadata.s }}`, `"<\"x\">\n"`},
		{`{{ quote .Metadata.s }} {{ squote "it's" }}`, `"<\"x\">\n" 'it''s'`},
		{`{{ dataurl "a+b c/d~é" }}`, "data:,a%2Bb%20c%2Fd~%C3%A9"},
		{`{{ index .Metadata "nope" | default "d" }} {{ .Metadata.n | default 5 }} {{ "x" | default "d" }}`, "d 5 x"},
		{`{{ join ", " .Metadata.keys }}|{{ join "," .Metadata.empty }}`, "a, b|"},
		{`{{ upper "aé" }} {{ lower "AÉ" }} [{{ trim "  x \n" }}]`, "AÉ aé [x]"},
	} {
		got, err := render1(t, c.text, data)
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.text, got, err, c.want)
		}
	}
	for _, c := range []struct{ text, want string }{
		{`{{ b64dec "!!" }}`, "b64dec: illegal base64"},
		{`{{ join "," "abc" }}`, "join: expected a list, got string"},
	} {
		if _, err := render1(t, c.text, data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.text, err, c.want)
		}
	}
}

// What the functions build counts into the run's work budget: 1000
// calls on 100 kB each build more than a config may.
func TestTemplateFuncsBudget(t *testing.T) {
	for _, call := range []string{"b64enc $x", "quote $x", "toJson $x", "dataurl $x", "upper $x", "trim $x", `join $x $.Metadata.l`} {
		text := `{{ $x := printf "%0100000d" 1 }}{{ range 1000 }}{{ $y := ` + call + ` }}{{ end }}`
		_, err := render1(t, text, &TemplateData{Metadata: map[string]any{"l": []any{1, 2}}})
		if be, ok := errors.AsType[*BudgetError](err); !ok || !strings.Contains(be.Error(), "builds more than") {
			t.Errorf("%s: err %v, want a budget error", call, err)
		}
	}
}

func TestMergeMetadata(t *testing.T) {
	under := map[string]any{"a": 1, "ntp": map[string]any{"pool": "p", "servers": []any{"s1"}}, "l": []any{1, 2}}
	over := map[string]any{"ntp": map[string]any{"pool": "q"}, "l": []any{3}, "b": nil}
	got := MergeMetadata(under, over)
	want := map[string]any{"a": 1, "ntp": map[string]any{"pool": "q", "servers": []any{"s1"}}, "l": []any{3}, "b": nil}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	if under["ntp"].(map[string]any)["pool"] != "p" || len(over["ntp"].(map[string]any)) != 1 {
		t.Errorf("inputs changed: %v %v", under, over)
	}
	if MergeMetadata(nil, nil) == nil {
		t.Error("nil merge is nil")
	}
}

func TestConfigURL(t *testing.T) {
	d := TemplateData{ConfigServerURL: "https://pxe.test:8443", selector: []string{"hostname", "rack"},
		Machine: Machine{MAC: "52:54:00:00:00:01", Hostname: "n1", Serial: "S1", Labels: map[string]string{"rack": "r 7", "zone": "z"}}}
	if got, want := d.ConfigURL(), "https://pxe.test:8443/config?mac=52:54:00:00:00:01&hostname=n1&rack=r%207"; got != want {
		t.Errorf("ConfigURL %q, want %q", got, want)
	}
	d.Machine = Machine{}
	if got, want := d.ConfigURL(), "https://pxe.test:8443/config"; got != want {
		t.Errorf("ConfigURL %q, want %q", got, want)
	}
}

// A cached load reruns the groups' templates when pxeops.yaml's
// metadata changes, as it is an input of every run.
func TestCacheSeesSettingsMetadata(t *testing.T) {
	tree := fstest.MapFS{
		"pxeops.yaml":     {Data: []byte("metadata: {domain: example.org}\n")},
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nargs: [\"d={{ .Metadata.domain }}\"]\n")},
		"groups/all.yaml": {Data: []byte("profile: p\n")},
	}
	cache := NewCache()
	if _, diags := LoadWith(context.Background(), tree, cache, nil); diags.Errors() > 0 {
		t.Fatalf("first load: %v", diags)
	}
	tree["pxeops.yaml"] = &fstest.MapFile{Data: []byte("metadata: {other: x}\n")}
	_, diags := LoadWith(context.Background(), tree, cache, nil)
	if diags.Errors() == 0 || !strings.Contains(diags[0].Message, "domain") {
		t.Errorf("second load: %v, want the missing domain", diags)
	}
}

func TestInstalledURL(t *testing.T) {
	d := TemplateData{ConfigServerURL: "https://pxe.test:8443", selector: []string{"mac", "rack", "state"},
		Machine: Machine{MAC: "52:54:00:00:00:01", Hostname: "n1", Labels: map[string]string{"rack": "r 7"}}}
	if got, want := d.InstalledURL(), "https://pxe.test:8443/v1/machines/52:54:00:00:00:01/installed?rack=r%207"; got != want {
		t.Errorf("InstalledURL %q, want %q", got, want)
	}
	d.selector = []string{"mac"}
	if got, want := d.InstalledURL(), "https://pxe.test:8443/v1/machines/52:54:00:00:00:01/installed"; got != want {
		t.Errorf("InstalledURL %q, want %q", got, want)
	}
}
