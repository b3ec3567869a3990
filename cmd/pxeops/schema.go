package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/pxeops/pxeops/schema"
)

// runSchema prints the JSON Schema of the config files, for editors.
func runSchema(args []string, stdout, stderr io.Writer) int {
	fset := newFlags("schema", "schema ["+strings.Join(schema.Kinds(), "|")+"]\n\nPrints a JSON Schema (draft 2020-12) of the config files: of one kind, or, without one, of any kind. Editors that run yaml-language-server validate a file as it is typed when its first line is\n  # yaml-language-server: $schema=<path or URL of the saved schema>", stderr)
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	if fset.NArg() > 1 {
		fmt.Fprintf(stderr, "pxeops schema: at most one kind, got %d arguments\n", fset.NArg())
		return exitUsage
	}
	out, err := schema.JSONSchema(fset.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "pxeops schema: %v\n", err)
		return exitUsage
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "pxeops schema: %v\n", err)
		return exitInvalid
	}
	return exitOK
}
