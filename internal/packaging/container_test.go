package packaging

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Podman is podman with storage and settings of the test's own: on these
// machines it needs runc (crun refuses the cgroup layout), no default
// ulimits and cgroupfs.
type Podman struct {
	args []string
	env  []string
}

// NewPodman skips the test without root or podman.
func NewPodman(t *testing.T) *Podman {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (podman, --net=host)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not installed (.ci/run installs podman and runc)")
	}
	tmp, err := os.MkdirTemp("", "pxp") // podman wants a runroot under 50 characters
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	conf := filepath.Join(tmp, "containers.conf")
	must(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n"), 0o644))
	return &Podman{
		// vfs: nothing mounted that could outlive the test
		args: []string{"--root", filepath.Join(tmp, "root"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"},
		env:  append(os.Environ(), "CONTAINERS_CONF="+conf),
	}
}

// Cmd is a podman command with the test's storage.
func (p *Podman) Cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append(append([]string{}, p.args...), args...)...)
	cmd.Env = p.env
	return cmd
}

// Build builds the image with packaging/build-image.sh.
func (p *Podman) Build(t *testing.T, image string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(dir, "build-image.sh"), image)
	cmd.Env = append(p.env, "PODMAN=podman "+strings.Join(p.args, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
}

// The image, built offline FROM scratch, serves the quickstart mounted
// read-only, as its own non-root user with no capabilities.
func TestContainerServesQuickstart(t *testing.T) {
	p := NewPodman(t)
	const image = "localhost/pxeops:test"
	p.Build(t, image)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	quickstart, _ := filepath.Abs("../../examples/quickstart")
	name := fmt.Sprintf("pxeops-test-%d", os.Getpid())
	out, err := p.Cmd("run", "-d", "--rm", "--name", name, "--net=host", "-v", quickstart+":/config:ro",
		image, "serve", "--source", "/config", "--http-addr", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() { p.Cmd("rm", "-f", "-t", "1", name).Run() })
	var body string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/ipxe?mac=52:54:00:12:34:56")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := p.Cmd("logs", name).CombinedOutput()
			t.Fatalf("no script from the container: %v %q\n%s", err, body, logs)
		}
	}
	if !strings.HasPrefix(body, "#!ipxe\n") || !strings.Contains(body, "pxeops.group=lab-vm") {
		t.Errorf("script: %q", body)
	}
	pid, err := p.Cmd("inspect", "--format", "{{.State.Pid}}", name).Output()
	must(t, err)
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	must(t, err)
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "CapEff:\t0000000000000000"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the container's process lacks %q:\n%s", want, status)
		}
	}
}
