package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve refuses, before anything runs, settings that could never work,
// with exit 2 and the flag as typed; today some were retried forever,
// exited 1 or were logged and ignored.
func TestServeFailsFastOnUnusableSettings(t *testing.T) {
	dir := writeTree(t, map[string]string{"profiles/p.yaml": profileWith("v=1"), "groups/one.yaml": group(mac1)})
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	const gitURL = "file:///nonexistent.git" // never fetched: refused before
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--source", gitURL, "--state-dir", filepath.Join(file, "sub")}, "--state-dir " + filepath.Join(file, "sub") + ": cannot be created: mkdir " + file + ": not a directory"},
		{[]string{"--source", gitURL, "--state-dir", ".pxeops-state"}, "--state-dir .pxeops-state: want an absolute path"},
		{[]string{"--source", dir, "--http-addr", "8080"}, "--http-addr 8080: want host:port, e.g. :8080"},
		{[]string{"--source", dir, "--tftp-addr", "69"}, "--tftp-addr 69: want host:port, e.g. :69"},
		{[]string{"--source", dir, "--omaha-author", "bad"}, `--omaha-author "bad": want "Name <email>"`},
		{[]string{"--source", dir, "--omaha-max-file-size", "0"}, "--omaha-max-file-size 0: want a positive number"},
		{[]string{"--source", dir, "--proxy-dhcp"}, "--interface: required for ProxyDHCP"},
		{[]string{"--source", dir, "--proxy-dhcp", "--interface", "pxeops-none0"}, "--interface pxeops-none0: "},
		{[]string{"--source", dir, "--assets-dir", filepath.Join(file, "none")}, "--assets-dir " + filepath.Join(file, "none") + ": "},
	} {
		code, _, stderr := runCLI(t, append([]string{"serve"}, c.args...)...)
		if code != exitUsage || !strings.HasPrefix(stderr, "pxeops serve: "+c.want) {
			t.Errorf("serve %q: exit %d, %q; want %d, %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(".pxeops-state"); err == nil {
		t.Error("a relative state dir was created")
	}
}

// Without HOME a user has no cache directory and the default state dir
// is relative: serve refuses it (above) rather than follow the working
// directory, and says why.
func TestDefaultStateDirWithoutHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	if d := defaultStateDirFor(1000); d != noHomeStateDir {
		t.Fatalf("default state dir without HOME = %q, want %q", d, noHomeStateDir)
	}
	_, _, stderr := runCLI(t, "serve", "--source", "file:///nonexistent.git", "--state-dir", noHomeStateDir)
	if !strings.Contains(stderr, "(the default when HOME is unset or empty: give --state-dir)") {
		t.Errorf("no hint at HOME: %q", stderr)
	}
}

// A listener that cannot be bound exits 1 naming its flag, and the error
// is the last line, after the log lines already written (the log is
// buffered).
func TestServeBindFailureIsTheLastLine(t *testing.T) {
	dir := writeTree(t, map[string]string{"profiles/p.yaml": profileWith("v=1"), "groups/one.yaml": group(mac1)})
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer taken.Close()
	ipxe := t.TempDir()
	code, _, stderr := runCLI(t, "serve", "--source", dir, "--http-addr", "127.0.0.1:0", "--tftp-addr", taken.LocalAddr().String(), "--ipxe-dir", ipxe, "--state-dir", t.TempDir())
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if code != exitInvalid || !strings.HasPrefix(last, "pxeops serve: --tftp-addr "+taken.LocalAddr().String()+": ") || !strings.Contains(last, "address already in use") {
		t.Errorf("exit %d, last line %q; want %d and the TFTP bind error", code, last, exitInvalid)
	}
	if !strings.Contains(stderr, "msg=listening component=http") {
		t.Errorf("no HTTP listening line before the error:\n%s", stderr)
	}
}
