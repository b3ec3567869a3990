package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/pxeops/pxeops/internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the reference section of README.md")

// README.md's reference section is exactly what the schema generates, so
// the documented fields and defaults are the ones the decoder applies.
func TestReadmeReference(t *testing.T) {
	const begin, end = "<!-- reference:begin -->\n", "<!-- reference:end -->"
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", begin, end)
	}
	want := Reference()
	if *update {
		readme = readme[:i+len(begin)] + want + readme[j:]
		if err := os.WriteFile("../README.md", []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := readme[i+len(begin) : j]; got != want {
		t.Errorf("README.md reference is out of date; run go test ./schema -run TestReadmeReference -update\n--- README ---\n%s\n--- schema ---\n%s", got, want)
	}
}

// The JSON Schema is kept in testdata, so a change to the types shows up
// in review as a change to what editors are told.
func TestJSONSchemaGolden(t *testing.T) {
	const golden = "testdata/pxeops.schema.json"
	got, err := JSONSchema("")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is out of date; run go test ./schema -run TestJSONSchemaGolden -update", golden)
	}
	for _, k := range Kinds() {
		one, err := JSONSchema(k)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(one, &doc); err != nil || doc["$ref"] != "#/$defs/"+k {
			t.Errorf("schema %s: $ref %v, err %v", k, doc["$ref"], err)
		}
	}
	if _, err := JSONSchema("template"); err == nil {
		t.Error(`JSONSchema("template") did not fail`)
	}
}

// kindOf is the schema kind of a file of a tree, "" for files the schema
// does not describe (templates, keyrings).
func kindOf(file string) string {
	if file == SettingsFile {
		return "settings"
	}
	dir, _, _ := strings.Cut(file, "/")
	if strings.HasSuffix(file, ".yaml") && slices.Contains([]string{"profiles", "groups", "images"}, dir) {
		return strings.TrimSuffix(dir, "s")
	}
	return ""
}

func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	data, err := JSONSchema("")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pxeops.json", doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, k := range Kinds() {
		if out[k], err = c.Compile("pxeops.json#/$defs/" + k); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// validateYAML checks one YAML file against its kind's schema, as an
// editor would: through JSON, as yaml-language-server sees the file.
func validateYAML(sch *jsonschema.Schema, data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// Every file of the example trees, and of the render cases pxeops
// accepts, is valid under the schema: an editor must never flag what
// pxeops takes.
func TestSchemaAcceptsExamples(t *testing.T) {
	schemas := compileSchemas(t)
	n := 0
	check := func(name, file string, data []byte) {
		if k := kindOf(file); k != "" {
			n++
			if err := validateYAML(schemas[k], data); err != nil {
				t.Errorf("%s: %s: %v", name, file, err)
			}
		}
	}
	for _, root := range []string{"../examples/flatcar", "../examples/quickstart"} {
		err := fs.WalkDir(os.DirFS(root), ".", func(file string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(filepath.Join(root, file))
			check(root, file, data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases, _ := filepath.Glob("../testdata/render/*.txtar")
	for _, c := range cases {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range txtar.Parse(data).Files {
			check(c, f.Name, f.Data)
		}
	}
	t.Logf("validated %d files", n)
	if n < 40 {
		t.Errorf("validated %d files, expected the examples and render cases", n)
	}
}

// The schema refuses what the decoder refuses field by field.
func TestSchemaRefuses(t *testing.T) {
	schemas := compileSchemas(t)
	for _, c := range []struct{ kind, yaml string }{
		{"group", "profile: a\nselctor: {mac: 52:54:00:00:00:01}\n"},
		{"group", "selector: {mac: 52:54:00:00:00:01}\n"},
		{"group", "profile: [a]\n"},
		{"profile", "kernel: /assets/k\nargs: console=ttyS0\n"},
		{"profile", "kernel: /assets/k\nconfig: {template: a, typ: raw}\n"},
		{"image", "os: flatcar\nversion: 1.2.3\nkernel: {url: /assets/k}\ninitrd: [{sha256: ab}]\n"},
		{"settings", "omaha: {interval: soon}\n"},
		{"settings", "allowEmpty: yes please\n"},
	} {
		if err := validateYAML(schemas[c.kind], []byte(c.yaml)); err == nil {
			t.Errorf("%s schema accepts %q", c.kind, c.yaml)
		}
	}
}
