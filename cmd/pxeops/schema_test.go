package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		ref  string
	}{{nil, ""}, {[]string{"group"}, "#/$defs/group"}, {[]string{"settings"}, "#/$defs/settings"}} {
		code, out, errOut := runCLI(t, append([]string{"schema"}, c.args...)...)
		if code != exitOK {
			t.Fatalf("schema %v: exit %d: %s", c.args, code, errOut)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("schema %v: %v", c.args, err)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || (doc["$ref"] != nil) != (c.ref != "") || c.ref != "" && doc["$ref"] != c.ref {
			t.Errorf("schema %v: $schema %v, $ref %v", c.args, doc["$schema"], doc["$ref"])
		}
		if defs, _ := doc["$defs"].(map[string]any); len(defs) != 4 {
			t.Errorf("schema %v: %d $defs, want profile, group, image, settings", c.args, len(defs))
		}
	}
	for _, args := range [][]string{{"schema", "template"}, {"schema", "group", "image"}} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage || !strings.Contains(errOut, "pxeops schema:") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}
