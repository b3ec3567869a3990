// Package podmantest runs podman for tests, with storage and settings of
// the test's own.
package podmantest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Podman is podman with storage and settings of the test's own: on these
// machines it needs runc (crun refuses the cgroup layout), no default
// ulimits and cgroupfs.
type Podman struct {
	args []string
	env  []string
}

// New skips the test without root or podman.
func New(t *testing.T) *Podman {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (podman, --net=host)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not installed (.ci/run installs podman and runc)")
	}
	tmp, err := os.MkdirTemp("", "pxp") // podman wants a runroot under 50 characters
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	conf := filepath.Join(tmp, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Podman{
		// vfs: nothing mounted that could outlive the test
		args: []string{"--root", filepath.Join(tmp, "root"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"},
		env:  append(os.Environ(), "CONTAINERS_CONF="+conf),
	}
}

// Env is the environment podman commands need, for commands that run
// podman through another (ip netns exec).
func (p *Podman) Env() []string { return p.env }

// Args are podman's global options for the test's storage.
func (p *Podman) Args() []string { return p.args }

// Cmd is a podman command with the test's storage.
func (p *Podman) Cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append(append([]string{}, p.args...), args...)...)
	cmd.Env = p.env
	return cmd
}

// Build builds the image with packaging/build-image.sh of the checkout at
// top.
func (p *Podman) Build(t *testing.T, top, image string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(top, "packaging", "build-image.sh"), image)
	cmd.Env = append(p.env, "PODMAN=podman "+strings.Join(p.args, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
}
