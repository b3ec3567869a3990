package packaging

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

const dir = "../../packaging"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// pxeops builds the binary once for the package's tests.
func pxeops(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		d, err := os.MkdirTemp("", "pxeops-packaging")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(d, "pxeops")
		out, err := exec.Command("go", "build", "-o", binary, "../../cmd/pxeops").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// systemd-analyze verify finds nothing to say about the unit (it warns
// about unknown keys, bad values and a missing binary), and the unit
// keeps the settings the README promises.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(dir, "pxeops.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=pxeops", "ProtectSystem=strict", "ReadOnlyPaths=/etc/pxeops",
		"Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (.ci/run installs systemd)")
	}
	// verify checks that ExecStart is executable: point it at a real build.
	local := filepath.Join(t.TempDir(), "pxeops.service")
	body := strings.ReplaceAll(string(unit), "/usr/local/bin/pxeops", pxeops(t))
	if err := os.WriteFile(local, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", local).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=true", local).CombinedOutput(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Log(lines[len(lines)-1]) // the exposure score, for the record
	}
}

// The example runs as a non-root user with NET_BIND_SERVICE alone, on a
// read-only root, and its ConfigMap, laid out as the kubelet mounts it
// (a timestamped directory behind ..data, symlinks at each item's path),
// passes pxeops check.
func TestKubernetesExample(t *testing.T) {
	f, err := os.Open(filepath.Join(dir, "kubernetes", "pxeops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := map[string]map[string]any{}
	for dec := yaml.NewDecoder(f); ; {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs[doc["kind"].(string)] = doc
	}
	dep, cm := docs["Deployment"], docs["ConfigMap"]
	if dep == nil || cm == nil || docs["Service"] == nil {
		t.Fatalf("kinds: %v", docs)
	}
	pod := get(t, dep, "spec", "template", "spec").(map[string]any)
	if pod["hostNetwork"] != true || get(t, pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("pod: hostNetwork %v, runAsNonRoot %v", pod["hostNetwork"], get(t, pod, "securityContext", "runAsNonRoot"))
	}
	c := pod["containers"].([]any)[0].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	caps := sc["capabilities"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
		!equal(caps["drop"], "ALL") || !equal(caps["add"], "NET_BIND_SERVICE") {
		t.Errorf("container securityContext: %v", sc)
	}

	// The kubelet's atomic writer: ..2026_12_01/<key>, ..data → it,
	// each item's path a symlink through ..data.
	root := t.TempDir()
	stamp := filepath.Join(root, "..2026_12_01_00_00_00.000000001")
	data := cm["data"].(map[string]any)
	var items []any
	for _, v := range pod["volumes"].([]any) {
		if v.(map[string]any)["name"] == "fleet" {
			items = get(t, v.(map[string]any), "configMap", "items").([]any)
		}
	}
	if len(items) != len(data) {
		t.Fatalf("%d items for %d keys", len(items), len(data))
	}
	for _, it := range items {
		key, path := it.(map[string]any)["key"].(string), it.(map[string]any)["path"].(string)
		must(t, os.MkdirAll(filepath.Join(stamp, filepath.Dir(path)), 0o755))
		must(t, os.WriteFile(filepath.Join(stamp, path), []byte(data[key].(string)), 0o644))
		must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(path)), 0o755))
		rel, _ := filepath.Rel(filepath.Join(root, filepath.Dir(path)), filepath.Join(root, "..data", path))
		must(t, os.Symlink(rel, filepath.Join(root, path)))
	}
	must(t, os.Symlink(filepath.Base(stamp), filepath.Join(root, "..data")))
	out, err := exec.Command(pxeops(t), "check", root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": valid: 1 profile, 1 group") {
		t.Errorf("pxeops check on the ConfigMap as mounted: %v\n%s", err, out)
	}
}

func get(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: not a mapping at %s", path, p)
		}
		v = mm[p]
	}
	return v
}

func equal(v any, want string) bool {
	l, ok := v.([]any)
	return ok && len(l) == 1 && l[0] == want
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
