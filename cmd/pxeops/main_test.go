package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		write(t, dir, name, body)
	}
	return dir
}

// diagnostic is a diagnostic as check --format json and /status show it.
type diagnostic struct {
	File     string
	Line     int
	Column   int
	Severity string
	Message  string
}

// The shipped examples pass check with no warnings at all.
func TestExamplesPassCheck(t *testing.T) {
	for _, ex := range []string{"quickstart", "flatcar"} {
		dir := filepath.Join("..", "..", "examples", ex)
		code, out, errOut := runCLI(t, "check", dir)
		if code != exitOK || !strings.Contains(out, ": valid: ") || !strings.Contains(out, " 0 warnings;") {
			t.Errorf("check %s = %d\n%s%s", ex, code, out, errOut)
		}
		// It says which keyring the updater verifies the example's image with.
		if want := "pxeops.yaml:1:1: notice: omaha: flatcar images are verified with the keyring fetched from https://www.flatcar.org/"; ex == "flatcar" && !strings.Contains(out, want) {
			t.Errorf("check %s lacks %q:\n%s", ex, want, out)
		}
	}
}

var brokenTree = map[string]string{
	"profiles/p.yaml": "kernel: /assets/k\n",
	"groups/g.yaml":   "profile: q\nselector:\n  mac: 52:54:00:00:00:01\n",
}

func TestCheckExitCodesAndFormats(t *testing.T) {
	dir := writeTree(t, brokenTree)
	code, out, _ := runCLI(t, "check", dir)
	wantLine := filepath.Join(dir, "groups/g.yaml") + `:1:10: error: profile "q" does not exist: no profiles/q.yaml; did you mean "p"?`
	if code != exitInvalid || !strings.Contains(out, wantLine+"\n") || !strings.Contains(out, "invalid: 1 error, 1 warning") {
		t.Errorf("text: code %d, output:\n%s\nwant line %s", code, out, wantLine)
	}

	code, out, _ = runCLI(t, "check", "--format", "json", dir)
	var r struct {
		Valid       bool
		Errors      int
		Diagnostics []diagnostic
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, out)
	}
	if code != exitInvalid || r.Valid || r.Errors != 1 || len(r.Diagnostics) != 2 ||
		r.Diagnostics[0].Line != 1 || r.Diagnostics[0].Column != 10 || r.Diagnostics[0].Severity != "error" {
		t.Errorf("json: code %d, %+v", code, r)
	}

	code, out, _ = runCLI(t, "check", "--format=github", dir)
	if code != exitInvalid || !strings.Contains(out, "::error file="+strings.ReplaceAll(filepath.Join(dir, "groups/g.yaml"), ":", "%3A")+",line=1,col=10,title=pxeops check::profile \"q\"") {
		t.Errorf("github: code %d, output:\n%s", code, out)
	}
}

// An empty directory, or one like / with neither groups/ nor profiles/,
// is not a config repository: check says so instead of "valid".
func TestCheckRefusesEmptyTrees(t *testing.T) {
	const want = "error: no groups/ and no profiles/: this does not look like a pxeops config repository (expected groups/<id>.yaml and profiles/<id>.yaml)"
	rootLike := writeTree(t, map[string]string{"etc/hostname": "box\n", "usr/bin/true": "", "var/log/syslog": "x\n", "README": "hi\n"})
	for _, dir := range []string{t.TempDir(), rootLike} {
		code, out, errOut := runCLI(t, "check", dir)
		if code != exitInvalid || !strings.Contains(out, filepath.Join(dir, "groups")+": "+want) || !strings.Contains(out, "invalid: 1 error") {
			t.Errorf("check %s = %d\n%s%s", dir, code, out, errOut)
		}
	}
	dir := writeTree(t, map[string]string{"pxeops.yaml": "allowEmpty: true\n"})
	if code, out, errOut := runCLI(t, "check", dir); code != exitOK || !strings.Contains(out, "warning: no groups/") {
		t.Errorf("check with allowEmpty = %d\n%s%s", code, out, errOut)
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--format", "xml", "."},
		{"check", "/does/not/exist"},
		{"check", "a", "b"},
		{"check", "--nope"},
		{"frobnicate"},
		{},
	} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestCheckFormatFromEnvironment(t *testing.T) {
	t.Setenv("PXEOPS_FORMAT", "json")
	_, out, _ := runCLI(t, "check", filepath.Join("..", "..", "examples", "flatcar"))
	if !strings.HasPrefix(out, "{") {
		t.Errorf("PXEOPS_FORMAT=json ignored: %s", out)
	}
	t.Setenv("PXEOPS_FORMAT", "yaml")
	if code, _, errOut := runCLI(t, "check", "."); code != exitUsage || !strings.Contains(errOut, "PXEOPS_FORMAT") {
		t.Errorf("bad PXEOPS_FORMAT: exit %d, %s", code, errOut)
	}
}

func TestRenderExplainsTheMatch(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "flatcar")
	code, out, errOut := runCLI(t, "render", "--mac", "52-54-00-A1-9C-A3", "--label", "rack=r1", "--server-url", "http://10.0.0.1:8080", dir)
	for _, want := range []string{
		"machine:  mac=52:54:00:a1:9c:a3 rack=r1\n",
		"matched:  node3 (groups/node3.yaml), selector mac=52:54:00:a1:9c:a3 (1 key)\n",
		"also matches: default, the default group (no selector); loses on precedence\n",
		"ignition.config.url=http://10.0.0.1:8080/ignition?mac=52:54:00:a1:9c:a3",
		`"source":"data:,node3"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q:\n%s%s", want, out, errOut)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
}

// render shows each answer exactly as `pxeops serve` serves it: every
// body the server gives the machine appears whole under its heading. The
// Pixiecore API asks by MAC alone, so it may answer from another group.
func TestRenderShowsWhatTheServerServes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"profiles/a.yaml":   "kernel: /assets/k\ninitrd: [/assets/i.gz]\nargs: [console=ttyS0, \"host={{ .Hostname }}\"]\nconfig: {template: t.sh}\n",
		"profiles/b.yaml":   "kernel: /assets/k2\nargs: [role=b]\n",
		"templates/t.sh":    "#!/bin/sh\necho {{ .Group }} {{ .Hostname }}\n",
		"groups/host.yaml":  "profile: a\nselector: {mac: \"52:54:00:00:00:01\", hostname: node1}\nmetadata: {role: etcd, net: {ip: 10.0.0.1}}\n",
		"groups/bymac.yaml": "profile: b\nselector: {mac: \"52:54:00:00:00:01\"}\nmetadata: {x: y}\n",
		"groups/solo.yaml":  "profile: b\nselector: {hostname: solo}\n",
	})
	srv := startServe(t, dir, "--server-url", "http://pxe.test")
	srv.eventually(t, "the tree is served", func() bool { code, _, _ := srv.get("/readyz"); return code == 200 })
	get := func(target string, code int) string {
		t.Helper()
		got, body, _ := srv.get(target)
		if got != code {
			t.Fatalf("GET %s: %d %s, want %d", target, got, body, code)
		}
		return body
	}
	for _, c := range []struct {
		args  []string
		query string
		want  []string // headings, each followed by the body of the next GET (or by itself)
		gets  []string
	}{{
		args:  []string{"--mac", "52-54-00-00-00-01", "--hostname", "node1", "--label", "rack=r7"},
		query: "mac=52:54:00:00:00:01&hostname=node1&rack=r7",
		want: []string{"--- iPXE script (/ipxe) ---\n", "--- config (/config, raw) ---\n", "--- metadata (/metadata) ---\n",
			"--- Pixiecore API (/pixiecore/v1/boot/52:54:00:00:00:01) ---\n(by MAC alone: bymac, profile b)\n"},
		gets: []string{"/ipxe?", "/config?", "/metadata?", "/pixiecore/v1/boot/52:54:00:00:00:01"},
	}, {
		args:  []string{"--mac", "52:54:00:00:00:09", "--hostname", "solo"},
		query: "mac=52:54:00:00:00:09&hostname=solo",
		want: []string{"--- iPXE script (/ipxe) ---\n", "--- config (/config, ) ---\n(none: the profile has no config)\n",
			"--- metadata (/metadata) ---\n", "--- Pixiecore API (/pixiecore/v1/boot/52:54:00:00:00:09) ---\n(none: no group matches mac=52:54:00:00:00:09 alone and there is no default group)\n"},
		gets: []string{"/ipxe?", "", "/metadata?", ""},
	}, {
		args:  []string{"--hostname", "solo"},
		query: "hostname=solo",
		want:  []string{"--- metadata (/metadata) ---\n", "--- Pixiecore API (/pixiecore/v1/boot/MAC) ---\n(none: it asks by MAC; give --mac)\n"},
		gets:  []string{"/metadata?", ""},
	}} {
		code, out, errOut := runCLI(t, append(append([]string{"render", "--server-url", "http://pxe.test"}, c.args...), dir)...)
		if code != exitOK {
			t.Fatalf("render %v: exit %d: %s", c.args, code, errOut)
		}
		for i, heading := range c.want {
			want := heading
			if target := c.gets[i]; target != "" {
				if strings.HasSuffix(target, "?") {
					target += c.query
				}
				want += get(target, 200)
			}
			if i := strings.Index(out, want); i >= 0 {
				rest := strings.TrimLeft(out[i+len(want):], "\n")
				if rest == "" || strings.HasPrefix(rest, "--- ") {
					continue
				}
			}
			t.Errorf("render %v lacks\n%s\nas a whole section in\n%s", c.args, want, out)
		}
	}
	get("/pixiecore/v1/boot/52:54:00:00:00:09", 404)
	get("/config?mac=52:54:00:00:00:09&hostname=solo", 404)
}

func TestRenderNoMatchAndBadInput(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"profiles/p.yaml": "kernel: /assets/k\n",
		"groups/g.yaml":   "profile: p\nselector:\n  mac: 52:54:00:00:00:01\n",
	})
	if code, out, _ := runCLI(t, "render", "--mac", "52:54:00:00:00:02", dir); code != exitInvalid || !strings.Contains(out, "no group matches") {
		t.Errorf("unmatched: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "render", "--mac", "nope", dir); code != exitUsage || !strings.Contains(errOut, `--mac: invalid MAC "nope"`) {
		t.Errorf("bad mac: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "render", "--mac", "52:54:00:00:00:01", writeTree(t, brokenTree)); code != exitInvalid || !strings.Contains(errOut, "does not exist") {
		t.Errorf("invalid tree: exit %d, %s", code, errOut)
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := runCLI(t, "--help"); code != exitOK || !strings.Contains(out, "pxeops check") {
		t.Errorf("--help: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, "check", "--help"); code != exitOK || !strings.Contains(errOut, "-format") {
		t.Errorf("check --help: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, "version"); code != exitOK || !strings.HasPrefix(out, "pxeops ") {
		t.Errorf("version: %d %s", code, out)
	}
}
