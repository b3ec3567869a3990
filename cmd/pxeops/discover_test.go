package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/gittest"
)

// pxeops discover against a real remote, fed by a running server two
// unknown machines asked: one branch, two files, check passes on it, a
// second pass adds nothing.
func TestDiscoverCommand(t *testing.T) {
	fleet := map[string]string{
		"profiles/p.yaml": profileWith("v=1"),
		"groups/one.yaml": group(mac1),
		"pxeops.yaml":     "discovery:\n  profile: p\n",
	}
	remote := gittest.New(t)
	remote.Commit("fleet", fleet)
	dir := t.TempDir()
	for name, body := range fleet {
		write(t, dir, name, body)
	}
	s := startServe(t, dir)
	for _, mac := range []string{"52-54-00-00-00-0a", "52-54-00-00-00-0b"} {
		if code, _, _ := s.get("/ipxe?mac=" + mac); code != 404 {
			t.Fatalf("unknown %s: %d, want 404", mac, code)
		}
	}
	state := t.TempDir()
	args := []string{"discover", "--repo", remote.FileURL(), "--admin", s.url, "--push", "--state-dir", state}
	code, out, errOut := runCLI(t, args...)
	if code != exitOK || !strings.Contains(out, "52:54:00:00:00:0a: proposed groups/discovered-52-54-00-00-00-0a.yaml") ||
		!strings.Contains(out, "proposed on branch pxeops/discovered") || !strings.Contains(out, "pushed)") {
		t.Fatalf("discover: exit %d\n%s%s", code, out, errOut)
	}
	remote.Git("fetch", "-q", "origin")
	files := strings.Fields(remote.Git("ls-tree", "-r", "--name-only", "origin/pxeops/discovered", "groups"))
	want := []string{"groups/discovered-52-54-00-00-00-0a.yaml", "groups/discovered-52-54-00-00-00-0b.yaml", "groups/one.yaml"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("the branch holds %q, want %q", files, want)
	}
	if code, out, errOut := runCLI(t, "check", "--ref", "pxeops/discovered", remote.FileURL()); code != exitOK {
		t.Errorf("check on the branch: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, args...)
	if code != exitOK || !strings.Contains(out, "already holds these") || !strings.Contains(out, "0a: already proposed") {
		t.Errorf("second pass: exit %d\n%s", code, out)
	}

	bad := filepath.Join(t.TempDir(), "list.json")
	os.WriteFile(bad, []byte(`{"machines":[{"mac":"x","surprise":1}]}`), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"discover", "--admin", s.url}, exitUsage, "--repo is required"},
		{[]string{"discover", "--repo", remote.FileURL(), "--machines", bad, "--state-dir", state}, exitInvalid, "--machines " + bad + ": "},
		{[]string{"discover", "--repo", remote.FileURL(), "--machines", filepath.Join(dir, "none.json")}, exitUsage, "--machines: "},
		{[]string{"discover", "--repo", remote.FileURL(), "--author", "nobody"}, exitUsage, `--author "nobody"`},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d %q, want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
