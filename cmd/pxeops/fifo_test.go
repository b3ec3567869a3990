package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
)

// check reads a directory the way serve does: a named pipe in groups/ is
// an error at its file, not a check that never returns (and, blocked in
// open(2), ignored SIGTERM and SIGINT).
func TestCheckRefusesFIFOInTree(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"profiles/p.yaml": "kernel: /assets/k\n",
		"groups/g.yaml":   "profile: p\n",
	})
	fifotest.Mkfifo(t, filepath.Join(dir, "groups/pipe.yaml"))
	fifotest.Returns(t, "check", func() {
		code, out, errOut := runCLI(t, "check", dir)
		want := filepath.Join(dir, "groups/pipe.yaml") + ": error: is a named pipe (FIFO), not a regular file"
		if code != exitInvalid || !strings.Contains(out, want) {
			t.Errorf("check = %d\n%s%s\nwant a line %s", code, out, errOut, want)
		}
	})
	fifotest.Returns(t, "check of a FIFO", func() {
		code, _, errOut := runCLI(t, "check", filepath.Join(dir, "groups/pipe.yaml"))
		if code != exitUsage || !strings.Contains(errOut, "is a named pipe (FIFO), not a directory") {
			t.Errorf("check FIFO = %d, %s", code, errOut)
		}
	})
}

// Key, token and secret files that are named pipes fail at once, naming
// the flag.
func TestKeyFlagsRefuseFIFOs(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	fifotest.Mkfifo(t, fifo)
	const remote = "file:///nonexistent.git" // refused before any fetch
	for _, c := range []struct {
		flag string
		args []string
	}{
		{"--token-file", []string{"serve", "--source", "https://git.invalid/fleet.git", "--token-file", fifo}},
		{"--token-file", []string{"check", "--token-file", fifo, "https://git.invalid/fleet.git"}},
		{"--webhook-secret-file", []string{"serve", "--source", remote, "--webhook-secret-file", fifo}},
		{"--verify-commits", []string{"serve", "--source", remote, "--verify-commits", fifo}},
		{"--verify-commits", []string{"check", "--verify-commits", fifo, remote}},
		{"--sign-key", []string{"omaha", "sync", "--repo", t.TempDir(), "--assets-dir", t.TempDir(), "--sign-key", fifo}},
		{"--machines", []string{"discover", "--repo", t.TempDir(), "--machines", fifo}},
		{"--ssh-key", []string{"serve", "--source", "git@git.invalid:fleet.git", "--ssh-key", fifo, "--known-hosts", fifo}},
	} {
		args := c.args
		if args[0] == "serve" {
			args = append(args, "--state-dir", t.TempDir(), "--http-addr", "127.0.0.1:0")
		}
		fifotest.Returns(t, strings.Join(c.args, " "), func() {
			code, _, errOut := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(errOut, c.flag+": open "+fifo+": is a named pipe (FIFO), not a regular file") {
				t.Errorf("%q: exit %d, %s", args, code, errOut)
			}
		})
	}
}
