package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// check on a tree whose templates take minutes to run (each just under
// its step budget) ends within a second of SIGTERM or SIGINT, saying so.
func TestCheckObeysSignals(t *testing.T) {
	files := map[string]string{
		"profiles/slow.yaml": "kernel: /assets/k\nargs: [\"x={{ range 99990 }}{{ end }}{{ .MAC }}\"]\n",
	}
	for i := range 400 {
		files[fmt.Sprintf("groups/g%d.yaml", i)] = fmt.Sprintf("profile: slow\nselector: {mac: \"52:54:00:00:%02x:%02x\"}\n", i/256, i%256)
	}
	dir := writeTree(t, files)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "check", dir)
			cmd.Env = append(os.Environ(), "PXEOPS_TEST_AS_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			time.Sleep(500 * time.Millisecond) // well into the template runs
			sent := time.Now()
			cmd.Process.Signal(sig)
			select {
			case err := <-done:
				if took := time.Since(sent); took > time.Second {
					t.Errorf("exited %s after the signal", took)
				}
				if cmd.ProcessState.ExitCode() != exitInvalid || !strings.Contains(out.String(), "interrupted") {
					t.Errorf("exit %v, output %q", err, out.String())
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10 s after %s", sig)
			}
		})
	}
}
