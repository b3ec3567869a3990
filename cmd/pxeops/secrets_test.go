package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/gittest"
)

// uniqueSecret is a value no output could hold by chance.
func uniqueSecret(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return "pxs-" + hex.EncodeToString(b)
}

// kubeSecret lays out dir as the kubelet mounts a Secret and swaps it to
// values: a fresh timestamped directory, ..data re-pointed at it with
// one rename, a top-level link per key into ..data.
func kubeSecret(t *testing.T, dir string, gen int, values map[string]string) {
	t.Helper()
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", gen, gen)
	must(t, os.MkdirAll(filepath.Join(dir, ts), 0o755))
	for k, v := range values {
		must(t, os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o644))
	}
	must(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	for k := range values {
		if _, err := os.Lstat(filepath.Join(dir, k)); err != nil {
			must(t, os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)))
		}
	}
}

func runOut(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

const secretTemplate = "#cloud-config\n# the join token\ntoken: {{ secret \"etcd-token\" }}\nhost: {{ .MAC }}\n"

// A secret seeded with a unique value goes to the machine's config and
// to render --show-secrets, and nowhere else: not check's or render's
// output, the iPXE script, /status, /metrics, the log, nor any file
// under the state dir, through a boot, a reload for a changed secret, a
// reload the secret's value breaks, and one a broken template breaks.
func TestSecretsNeverLeak(t *testing.T) {
	v1, v2, v3 := uniqueSecret(t), uniqueSecret(t), uniqueSecret(t)
	bad := v3 + ": [" // breaks the cloud-config's YAML; the placeholder does not
	secrets := t.TempDir()
	kubeSecret(t, secrets, 1, map[string]string{"etcd-token": v1, "other": "x"})

	r := gittest.New(t)
	profile := profileWith("v=1") + "config: {template: join.yaml, type: cloud-config}\n"
	r.Commit("first", map[string]string{"profiles/p.yaml": profile, "groups/one.yaml": group(mac1), "templates/join.yaml": secretTemplate})
	var outputs []string // everything that must not hold a value

	// check: with the directory, with the names, and a missing name.
	code, out := runOut(t, "check", "--secrets-dir", secrets, r.Work)
	outputs = append(outputs, out)
	if code != exitOK {
		t.Fatalf("check --secrets-dir: exit %d\n%s", code, out)
	}
	names := filepath.Join(t.TempDir(), "names")
	must(t, os.WriteFile(names, []byte("# from kubectl\netcd-token\n"), 0o644))
	if code, out := runOut(t, "check", "--secrets-names", names, "--format", "json", r.Work); code != exitOK {
		t.Fatalf("check --secrets-names: exit %d\n%s", code, out)
	}
	must(t, os.WriteFile(names, []byte("etcd-tokn\n"), 0o644))
	code, out = runOut(t, "check", "--secrets-names", names, r.Work)
	if want := filepath.Join(r.Work, "templates/join.yaml") + ":3:18: error: secret \"etcd-token\" does not exist"; code != exitInvalid || !strings.Contains(out, want) {
		t.Errorf("check with the name missing: exit %d, want 1 and %q in\n%s", code, want, out)
	}
	if code, out := runOut(t, "check", r.Work); code != exitInvalid || !strings.Contains(out, "no secrets are given") {
		t.Errorf("check without secrets: exit %d\n%s", code, out)
	}

	// render: masked unless asked.
	code, out = runOut(t, "render", "--mac", mac1, "--secrets-dir", secrets, r.Work)
	outputs = append(outputs, out)
	if code != exitOK || !strings.Contains(out, "token: <secret:etcd-token>") {
		t.Errorf("render: exit %d, want the mask in\n%s", code, out)
	}
	code, out = runOut(t, "render", "--mac", mac1, "--secrets-dir", secrets, "--show-secrets", r.Work)
	if code != exitOK || !strings.Contains(out, "token: "+v1) {
		t.Errorf("render --show-secrets: exit %d, want the value in\n%s", code, out)
	}
	if code, out := runOut(t, "render", "--mac", mac1, "--show-secrets", r.Work); code != exitUsage {
		t.Errorf("render --show-secrets without --secrets-dir: exit %d\n%s", code, out)
	}

	// serve from git, with a state dir to search.
	url, _ := r.Daemon()
	stateDir := t.TempDir()
	hook := filepath.Join(t.TempDir(), "hook")
	must(t, os.WriteFile(hook, []byte(hookSecret), 0o600))
	s := startServe(t, url, "--state-dir", stateDir, "--poll", "1h", "--webhook-secret-file", hook, "--secrets-dir", secrets)
	// Under the default access mode a config that reads a secret goes
	// only to its machine, which this test on loopback is not (that the
	// machine gets it is internal/daemon's TestSecretsOnlyToTheirMachine):
	// here each revision is followed in /status, and /config must refuse.
	config := func(prev string) (revision string) {
		t.Helper()
		s.eventually(t, "a revision after "+prev, func() bool {
			st := s.status(t)
			if st.Served != nil {
				revision = st.Served.Revision
			}
			return revision != "" && revision != prev
		})
		code, body, _ := s.get("/config?mac=" + mac1)
		if code != http.StatusForbidden {
			t.Errorf("/config to loopback: %d %q, want 403", code, body)
		}
		outputs = append(outputs, body)
		return revision
	}
	stillServes := func(want string) {
		t.Helper()
		if st := s.status(t); st.Served == nil || st.Served.Revision != want {
			t.Errorf("served %+v, want %s still", st.Served, want)
		}
	}
	rev1 := config("")
	digest1 := s.status(t).Served.Digest

	kubeSecret(t, secrets, 2, map[string]string{"etcd-token": v2, "other": "x"})
	rev2 := config(rev1)
	if rev2 == rev1 || !strings.Contains(rev2, "+secrets:") {
		t.Errorf("a changed secret served as revision %q, after %q: want a new one", rev2, rev1)
	}
	if d := s.status(t).Served.Digest; d != digest1 {
		t.Errorf("digest %s after a secret changed, want the tree's %s still", d, digest1)
	}

	kubeSecret(t, secrets, 3, map[string]string{"etcd-token": bad, "other": "x"})
	s.eventually(t, "the breaking value is refused", func() bool {
		a := s.status(t).LastAttempt
		return a != nil && a.Result == "invalid" && a.Revision != rev2
	})
	if a := s.status(t).LastAttempt; len(a.Diagnostics) == 0 || !strings.Contains(a.Diagnostics[0].Message, "only with the secrets' values") {
		t.Errorf("diagnostics of the breaking value: %+v", a.Diagnostics)
	}
	stillServes(rev2) // the last good one

	kubeSecret(t, secrets, 4, map[string]string{"etcd-token": v2, "other": "x"})
	r.Commit("broken", map[string]string{"templates/join.yaml": secretTemplate + "{{ secret \"etcd-token\" | nope }}\n"})
	postHook(t, s)
	s.eventually(t, "the broken template is refused", func() bool {
		a := s.status(t).LastAttempt
		return a != nil && a.Result == "invalid" && strings.HasPrefix(a.Revision, r.Git("rev-parse", "HEAD"))
	})
	stillServes(rev2)

	_, script, _ := s.get("/ipxe?mac=" + mac1)
	_, status, _ := s.get("/status")
	_, metrics, _ := s.get("/metrics")
	outputs = append(outputs, script, status, metrics, s.logs.String())
	for _, v := range []string{v1, v2, v3} {
		for i, o := range outputs {
			if strings.Contains(o, v) {
				t.Errorf("output %d holds a secret value:\n%s", i, o)
			}
		}
	}
	files := 0
	filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		for _, v := range []string{v1, v2, v3} {
			if bytes.Contains(data, []byte(v)) {
				t.Errorf("%s holds a secret value", p)
			}
		}
		return err
	})
	if files == 0 {
		t.Error("the state dir holds no files: nothing was searched")
	}
	if !strings.Contains(status, `"kind": "secrets"`) {
		t.Errorf("/status does not report the secrets directory:\n%s", status)
	}
}

// check fails on a tree the server would refuse for its access mode: a
// secret in a group a request can claim (uuid), or any secret under
// --access open; a secret in a MAC group passes under the default.
func TestCheckAppliesTheAccessRule(t *testing.T) {
	names := filepath.Join(t.TempDir(), "names")
	if err := os.WriteFile(names, []byte("token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"profiles/p.yaml": "kernel: /assets/k\nconfig: {template: c.sh}\n",
		"templates/c.sh":  "echo join {{ secret \"token\" }}\n",
		"groups/m.yaml":   "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	}
	dir := writeTree(t, files)
	if code, out, errOut := runCLI(t, "check", "--secrets-names", names, dir); code != exitOK {
		t.Errorf("a secret in a MAC group, default mode: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ := runCLI(t, "check", "--secrets-names", names, "--access", "open", dir)
	if code != exitInvalid || !strings.Contains(out, filepath.Join(dir, "groups/m.yaml")+": error: ") || !strings.Contains(out, "access mode open") {
		t.Errorf("--access open: exit %d\n%s", code, out)
	}
	files["groups/u.yaml"] = "profile: p\nselector: {uuid: \"8f4c0a2e-6a53-4b1e-9b7a-0d1c2e3f4a5b\"}\n"
	dir = writeTree(t, files)
	if code, out, _ := runCLI(t, "check", "--secrets-names", names, dir); code != exitInvalid || !strings.Contains(out, filepath.Join(dir, "groups/u.yaml")) || strings.Contains(out, "groups/m.yaml: error") {
		t.Errorf("a secret in a uuid group: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "check", "--access", "everyone", dir); code != exitUsage || !strings.Contains(errOut, "--access") {
		t.Errorf("a bad mode: exit %d %s", code, errOut)
	}
}
