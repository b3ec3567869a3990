package packaging

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/podmantest"
)

// The image, built offline FROM scratch, serves the quickstart mounted
// read-only, as its own non-root user with no capabilities.
func TestContainerServesQuickstart(t *testing.T) {
	p := podmantest.New(t)
	const image = "localhost/pxeops:test"
	p.Build(t, "../..", image)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	quickstart, _ := filepath.Abs("../../examples/quickstart")
	name := fmt.Sprintf("pxeops-test-%d", os.Getpid())
	out, err := p.Cmd("run", "-d", "--rm", "--name", name, "--net=host", "--read-only", "--cap-drop=all", "-v", quickstart+":/config:ro",
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
