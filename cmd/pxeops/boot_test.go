package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/logtest"
)

// startBoot runs `pxeops boot args...` in-process on a free loopback port
// until the test ends.
func startBoot(t *testing.T, args ...string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"boot", "--http-addr", addr}, args...), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("boot exited %d; log:\n%s", code, logs)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("boot did not stop within 10s of cancel")
		}
	})
	s := &testServer{url: "http://" + addr, logs: logs, stop: cancel}
	s.eventually(t, "boot serves its tree", func() bool {
		code, _, _ := s.get("/readyz")
		return code == http.StatusOK
	})
	return s
}

// Every machine gets the kernel and the command line, taken literally; local
// files are served, URLs passed through; flags may follow the files.
func TestBootStatic(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	must(t, os.WriteFile(kernel, []byte("the kernel"), 0o644))
	must(t, os.WriteFile(initrd, []byte("the initrd"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("not to be served"), 0o644))
	s := startBoot(t, kernel, initrd, "https://images.test/extra.cpio.gz", "--cmdline", "console=ttyS0  x={{y}} quiet")
	for _, mac := range []string{"52:54:00:12:34:56", "02:00:00:00:00:01"} {
		code, body, _ := s.get("/ipxe?mac=" + mac)
		want := "kernel " + s.url + "/assets/0/vmlinuz initrd=initrd.img initrd=extra.cpio.gz console=ttyS0 x={{y}} quiet\n"
		if code != http.StatusOK || !strings.Contains(body, want) ||
			!strings.Contains(body, "initrd --name initrd.img "+s.url+"/assets/1/initrd.img\n") ||
			!strings.Contains(body, "initrd --name extra.cpio.gz https://images.test/extra.cpio.gz\n") {
			t.Errorf("/ipxe for %s: %d\n%s\nwant the line %q and both initrds", mac, code, body, want)
		}
	}
	for path, want := range map[string]string{"/assets/0/vmlinuz": "the kernel", "/assets/1/initrd.img": "the initrd"} {
		if code, body, _ := s.get(path); code != http.StatusOK || body != want {
			t.Errorf("%s: %d %q, want %q", path, code, body, want)
		}
	}
	for _, path := range []string{"/assets/0/secret", "/assets/secret", "/assets/../secret"} {
		if code, body, _ := s.get(path); code == http.StatusOK {
			t.Errorf("%s: served %q; only the named files may be", path, body)
		}
	}
	// The real Pixiecore pointed at us gets the same command line back
	// from its template.
	if code, body, _ := s.get("/pixiecore/v1/boot/52:54:00:12:34:56"); code != http.StatusOK || !strings.Contains(body, `"cmdline":"console=ttyS0 x={{\"{{\"}}y}} quiet"`) {
		t.Errorf("/pixiecore/v1/boot: %d %s", code, body)
	}
}

func TestBootUsage(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "vmlinuz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "pxeops boot: a KERNEL is required"},
		{[]string{filepath.Join(dir, "none")}, "pxeops boot: stat " + filepath.Join(dir, "none") + ": no such file"},
		{[]string{dir}, "pxeops boot: " + dir + ": not a regular file"},
		{[]string{fifo}, "pxeops boot: " + fifo + ": not a regular file"}, // at once, never opened
		{[]string{"--api", "http://api.test", "https://images.test/vmlinuz", "--interface", "lo"}, "pxeops boot: --api: the API says what each machine boots"},
		{[]string{"--api", "http://api.test"}, "pxeops boot: --api needs --interface"},
		{[]string{"--api", "ftp://api.test", "--interface", "lo"}, "pxeops boot: --api ftp://api.test: want an http(s) URL"},
		{[]string{"https://images.test/vmlinuz", "--http-addr", "8080"}, "pxeops boot: --http-addr 8080: want host:port"},
		{[]string{"https://images.test/vmlinuz", "--interface", "pxeops-none0"}, "pxeops boot: --interface pxeops-none0: "},
		{[]string{"https://images.test/vmlinuz", "--cmdline", "a\x00b"}, "pxeops boot: "},
	} {
		code, _, stderr := runCLI(t, append([]string{"boot"}, c.args...)...)
		if code != exitUsage || !strings.HasPrefix(lastLine(stderr), c.want) {
			t.Errorf("boot %q: exit %d, %q; want %d, %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args    []string
		pos     []string
		cmdline string
	}{
		{[]string{"k", "i", "--cmdline", "a b"}, []string{"k", "i"}, "a b"},
		{[]string{"--cmdline=a", "k", "i"}, []string{"k", "i"}, "a"},
		{[]string{"k", "--cmdline", "a", "i"}, []string{"k", "i"}, "a"},
		{[]string{"k", "--", "--cmdline", "x"}, []string{"k", "--cmdline", "x"}, ""},
	} {
		fset := newFlags("boot", "", io.Discard)
		cmdline := fset.String("cmdline", "", "")
		pos, code := parseInterspersed(fset, c.args, io.Discard)
		if code != -1 || strings.Join(pos, "|") != strings.Join(c.pos, "|") || *cmdline != c.cmdline {
			t.Errorf("%q: %q %q (code %d), want %q %q", c.args, pos, *cmdline, code, c.pos, c.cmdline)
		}
	}
}
