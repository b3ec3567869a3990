package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"
)

func secretTree(tmpl string) fstest.MapFS {
	return fstest.MapFS{
		"profiles/p.yaml":  {Data: []byte("kernel: /assets/k\nconfig: {template: c.yaml, type: cloud-config}\n")},
		"groups/g.yaml":    {Data: []byte("profile: p\nselector: {mac: 52:54:00:00:00:01}\n")},
		"templates/c.yaml": {Data: []byte(tmpl)},
	}
}

func mustSecrets(t *testing.T, values map[string]string) *Secrets {
	t.Helper()
	m := map[string][]byte{}
	for k, v := range values {
		m[k] = []byte(v)
	}
	s, err := NewSecrets("the test's secrets", m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func renderConfig(t *testing.T, tr *Tree) string {
	t.Helper()
	var b bytes.Buffer
	g := tr.Groups["g"]
	p := tr.Profiles["p"]
	if err := p.WriteConfig(context.Background(), &b, sampleData(g, p)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A secret renders its value, masked its placeholder, names-only its
// placeholder; the digest is the tree's whatever the secrets.
func TestSecretRenders(t *testing.T) {
	fsys := secretTree("#cloud-config\ntoken: {{ secret \"tok\" }}\n")
	real := mustSecrets(t, map[string]string{"tok": "v-one"})
	names, err := SecretNames("a names file", []string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, c := range []struct {
		sec  *Secrets
		want string
	}{
		{real, "token: v-one"},
		{real.Masked(), "token: <secret:tok>"},
		{names, "token: <secret:tok>"},
		{mustSecrets(t, map[string]string{"tok": "v-two"}), "token: v-two"},
	} {
		tr, diags := LoadWith(context.Background(), fsys, nil, c.sec)
		if diags.Errors() > 0 {
			t.Fatalf("%v: %v", c.sec, diags)
		}
		if got := renderConfig(t, tr); !strings.Contains(got, c.want) {
			t.Errorf("%v: config %q, want %q", c.sec, got, c.want)
		}
		if got := tr.Profiles["p"].SecretNames(); len(got) != 1 || got[0] != "tok" {
			t.Errorf("SecretNames = %v", got)
		}
		digests = append(digests, tr.Digest())
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("digests %v: the secrets changed the digest", digests)
		}
	}
}

// A missing secret is an error where it is written, once, also when no
// branch that runs reads it; in a template no group uses, a warning.
func TestMissingSecret(t *testing.T) {
	fsys := secretTree("#cloud-config\n{{ if false }}\ntoken: {{ secret \"tokn\" }}\n{{ end }}\n")
	fsys["templates/unused.yaml"] = &fstest.MapFile{Data: []byte(`x {{ secret "gone" }}`)}
	for _, sec := range []*Secrets{nil, mustSecrets(t, map[string]string{"tok": "v"})} {
		_, diags := LoadWith(context.Background(), fsys, nil, sec)
		var got []string
		for _, d := range diags {
			if strings.Contains(d.Message, "secret") {
				got = append(got, d.String())
			}
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], `templates/c.yaml:3:18: error: secret "tokn" does not exist`) ||
			!strings.HasPrefix(got[1], `templates/unused.yaml:1:13: warning: secret "gone" does not exist`) {
			t.Errorf("with %v: %q", sec, got)
		}
		if sec != nil && !strings.Contains(got[0], `did you mean "tok"?`) {
			t.Errorf("no suggestion: %s", got[0])
		}
	}
}

// AnySecrets, the image updater's, accepts every name.
func TestAnySecrets(t *testing.T) {
	tr, diags := LoadWith(context.Background(), secretTree("#cloud-config\ntoken: {{ secret \"whatever\" }}\n"), nil, AnySecrets())
	if diags.Errors() > 0 {
		t.Fatal(diags)
	}
	if got := renderConfig(t, tr); !strings.Contains(got, "token: <secret:whatever>") {
		t.Errorf("config %q", got)
	}
}

// secret takes one constant name, only in configs.
func TestSecretCallsRefused(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{`{{ secret .MAC }}`, "1:4: secret takes one quoted name"},
		{`{{ "tok" | secret }}`, "1:12: secret takes one quoted name"},
		{`{{ print (secret) }}`, "1:11: secret takes one quoted name"},
		{`{{ secret "a" "b" }}`, "1:4: secret takes one quoted name"},
		{`{{ define "x" }}{{ secret $ }}{{ end }}`, "secret takes one quoted name"},
		{`{{ secret "../etc/passwd" }}`, "1:11: invalid secret name"},
		{`{{ (secret "a").X }}`, ""},
	} {
		_, err := parseTemplate("t", c.tmpl)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.tmpl, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.tmpl, err, c.want)
		}
	}
	fsys := secretTree("x")
	fsys["profiles/p.yaml"] = &fstest.MapFile{Data: []byte("kernel: /assets/k\nargs: ['t={{ secret \"tok\" }}']\n")}
	_, diags := LoadWith(context.Background(), fsys, nil, mustSecrets(t, map[string]string{"tok": "v"}))
	if !strings.Contains(fmt.Sprint(diags), "profiles/p.yaml:2:8: error: secret is for configs only") {
		t.Errorf("a secret in a kernel argument: %v", diags)
	}
	if _, err := (MirrorData{}).Expand("omaha.mirror", `https://x/{{ secret "tok" }}`); err == nil || !strings.Contains(err.Error(), "configs only") {
		t.Errorf("a secret in the mirror: %v", err)
	}
}

// A value that breaks the config is refused without its own error (which
// may quote the rendered text), and the cache keys runs by the secrets:
// the same tree with a breaking value fails, with a good one serves.
func TestSecretValueBreaksConfig(t *testing.T) {
	fsys := fstest.MapFS{
		"profiles/p.yaml":  {Data: []byte("kernel: /assets/k\nconfig: {template: c.yaml, type: ignition}\n")},
		"groups/g.yaml":    {Data: []byte("profile: p\n")},
		"templates/c.yaml": {Data: []byte(`{"ignition": {"version": "3.4.0"}, "passwd": {"users": [{"name": "core", "passwordHash": "{{ secret "tok" }}"}]}}`)},
	}
	cache := NewCache()
	good := mustSecrets(t, map[string]string{"tok": "fine"})
	if _, diags := LoadWith(context.Background(), fsys, cache, good); diags.Errors() > 0 {
		t.Fatal(diags)
	}
	bad := mustSecrets(t, map[string]string{"tok": `leaked"value`})
	_, diags := LoadWith(context.Background(), fsys, cache, bad)
	if diags.Errors() != 1 || !strings.Contains(diags[0].Message, "only with the secrets' values") || strings.Contains(fmt.Sprint(diags), "leaked") {
		t.Errorf("diags %v: want the masked error, never the value", diags)
	}
	if _, diags := LoadWith(context.Background(), fsys, cache, good); diags.Errors() > 0 {
		t.Fatal(diags)
	}
}

// A set never prints a value, however it is printed.
func TestSecretsDoNotPrint(t *testing.T) {
	s := mustSecrets(t, map[string]string{"tok": "hunter2-value"})
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "secrets", s)
	js, _ := json.Marshal(struct{ S *Secrets }{s})
	out := fmt.Sprintf("%v %+v %#v %s", s, s, s, s) + logBuf.String() + string(js) + s.Fingerprint([]byte("k"))
	if strings.Contains(out, "hunter2") {
		t.Errorf("a value printed: %s", out)
	}
	if s.Fingerprint([]byte("k")) == s.Fingerprint([]byte("other key")) || s.Fingerprint([]byte("k")) == mustSecrets(t, map[string]string{"tok": "x"}).Fingerprint([]byte("k")) {
		t.Error("the fingerprint ignores its key or the values")
	}
}

// Each call of secret is a step: a loop of them stops at the budget.
func TestSecretCallsCountAsSteps(t *testing.T) {
	r, err := parseTemplate("t", `{{ range 1000000 }}{{ secret "tok" }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	err = r.execute(context.Background(), &bytes.Buffer{}, &TemplateData{}, Limits{Output: 1 << 30, Work: 1, Steps: 1000, Time: maxRunTime}, mustSecrets(t, map[string]string{"tok": ""}))
	if err == nil || !strings.Contains(err.Error(), "ran past 1000 steps") {
		t.Errorf("err = %v", err)
	}
}

func TestParseSecretNames(t *testing.T) {
	names, err := ParseSecretNames([]byte("# comment\n\n  etcd-token \nssh_host_key\r\n"))
	if err != nil || fmt.Sprint(names) != "[etcd-token ssh_host_key]" {
		t.Errorf("names %q, err %v", names, err)
	}
	for in, want := range map[string]string{
		"a\n  b/c\n": "2:3: invalid secret name",
		"a\nb\na\n":  "3:1: secret \"a\" listed twice (first on line 1)",
		"-x\n":       "1:1: invalid secret name",
	} {
		if _, err := ParseSecretNames([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func FuzzParseSecretNames(f *testing.F) {
	for _, s := range []string{"etcd-token\nssh_host_ed25519_key\n", "# c\n\n a \n", "a\na\n", "x/y\n", "\xff\n", strings.Repeat("n\n", 1001)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := ParseSecretNames(data)
		if err != nil {
			return
		}
		if _, err := SecretNames("fuzz", names); err != nil {
			t.Fatalf("accepted names %q refused by SecretNames: %v", names, err)
		}
		for _, n := range names {
			if strings.ContainsAny(n, "/\n\x00 ") || strings.HasPrefix(n, ".") {
				t.Fatalf("unsafe name %q accepted", n)
			}
		}
	})
}
