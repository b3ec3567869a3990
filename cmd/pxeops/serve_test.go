package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/logtest"
	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"
)

type testServer struct {
	url  string
	logs *logtest.Buffer
	stop func() // cancels serve, as SIGTERM does
}

// startServe runs `pxeops serve` in-process on a free loopback port until
// the test ends.
func startServe(t testing.TB, dir string, flags ...string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	args := append([]string{"serve", "--source", dir, "--http-addr", addr, "--log-level", "debug"}, flags...)
	if !slices.Contains(flags, "--state-dir") { // the machine state's file is locked: one per server
		args = append(args, "--state-dir", t.TempDir())
	}
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if done == nil {
			return
		}
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("serve exited %d; log:\n%s", code, logs)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not stop within 10s of cancel")
		}
	})
	s := &testServer{url: "http://" + addr, logs: logs, stop: cancel}
	s.eventually(t, "the server answers /healthz", func() bool {
		code, _, _ := s.get("/healthz")
		return code == http.StatusOK
	})
	return s
}

func (s *testServer) get(path string) (int, string, http.Header) {
	resp, err := http.Get(s.url + path)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// eventually polls cond until it holds; file events and rescans are
// asynchronous, so tests wait for the effect instead of sleeping.
func (s *testServer) eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; server log:\n%s", what, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servesScript waits until /ipxe for mac returns 200 with want in the body.
func (s *testServer) servesScript(t testing.TB, mac, want string) {
	t.Helper()
	s.eventually(t, fmt.Sprintf("/ipxe?mac=%s serves %q", mac, want), func() bool {
		code, body, _ := s.get("/ipxe?mac=" + mac)
		return code == http.StatusOK && strings.Contains(body, want)
	})
}

type statusDoc struct {
	Version string
	Ready   bool
	Served  *struct {
		Revision string
		Digest   string
	}
	LastAttempt *struct {
		Revision    string
		Result      string
		Errors      int
		Diagnostics []diagnostic
	} `json:"last_attempt"`
	Source struct {
		Watching bool
		LastScan string `json:"last_scan"`
	}
}

func (s *testServer) status(t *testing.T) statusDoc {
	t.Helper()
	code, body, _ := s.get("/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	return st
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func profileWith(arg string) string {
	return "kernel: /assets/k\ninitrd: [/assets/i]\nargs: [console=ttyS0, " + arg + "]\n"
}

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

func group(mac string) string { return "profile: p\nselector:\n  mac: " + mac + "\n" }

// Edits of every kind reach HTTP; an invalid edit keeps the old answers
// and reports why; fixing it recovers by itself.
func TestServeFollowsEdits(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	write(t, dir, "groups/two.yaml", group(mac2))
	s := startServe(t, dir)
	s.servesScript(t, mac1, " v=1")

	// A plain write.
	write(t, dir, "profiles/p.yaml", profileWith("v=2"))
	s.servesScript(t, mac1, " v=2")

	// An editor's save: write a temporary file, rename it over the original.
	write(t, dir, "profiles/.p.yaml.tmp", profileWith("v=3"))
	if err := os.Rename(filepath.Join(dir, "profiles/.p.yaml.tmp"), filepath.Join(dir, "profiles/p.yaml")); err != nil {
		t.Fatal(err)
	}
	s.servesScript(t, mac1, " v=3")

	// A new subdirectory, and a file in it that the profile starts using.
	write(t, dir, "templates/hello.txt", "hello {{ .MAC }}\n")
	write(t, dir, "profiles/p.yaml", profileWith("v=3")+"config: {template: hello.txt}\n")
	s.eventually(t, "/config serves the new template", func() bool {
		code, body, _ := s.get("/config?mac=" + mac1)
		return code == http.StatusOK && body == "hello "+mac1+"\n"
	})

	// A delete.
	if err := os.Remove(filepath.Join(dir, "groups/two.yaml")); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "the deleted group's machine gets 404", func() bool {
		code, _, _ := s.get("/ipxe?mac=" + mac2)
		return code == http.StatusNotFound
	})
	_, _, h := s.get("/ipxe?mac=" + mac1)
	goodRevision := h.Get("X-Pxeops-Revision")

	// An invalid edit: the old snapshot keeps serving, /status says why.
	write(t, dir, "groups/one.yaml", "profile: p\nselector:\n  mac: 52:54:00:00:00:01\n  mac: 52:54:00:00:00:09\n")
	s.eventually(t, "/status reports the invalid revision", func() bool {
		a := s.status(t).LastAttempt
		return a != nil && a.Result == "invalid"
	})
	st := s.status(t)
	d := st.LastAttempt.Diagnostics[0]
	if d.File != "groups/one.yaml" || d.Line != 4 || d.Column != 3 || !strings.Contains(d.Message, `duplicate key "mac"`) {
		t.Errorf("diagnostic = %+v, want groups/one.yaml:4:3 duplicate key", d)
	}
	if st.Served == nil || st.Served.Revision != goodRevision || !st.Ready {
		t.Errorf("served %+v, want still %s", st.Served, goodRevision)
	}
	code, body, h := s.get("/ipxe?mac=" + mac1)
	if code != http.StatusOK || !strings.Contains(body, " v=3") || h.Get("X-Pxeops-Revision") != goodRevision {
		t.Errorf("after invalid edit: %d %q revision %s, want the last good script of %s", code, body, h.Get("X-Pxeops-Revision"), goodRevision)
	}
	s.eventually(t, "the log records the rejection", func() bool { // lines are flushed every 100ms
		return strings.Contains(s.logs.String(), "revision rejected")
	})
	_, metrics, _ := s.get("/metrics")
	if !strings.Contains(metrics, `pxeops_reloads_total{result="invalid"} 1`) {
		t.Errorf("metrics lack the failed reload:\n%s", grep(metrics, "pxeops_reloads_total"))
	}

	// The fix recovers without a restart.
	write(t, dir, "groups/one.yaml", group(mac1))
	write(t, dir, "profiles/p.yaml", profileWith("v=4"))
	s.servesScript(t, mac1, " v=4")
	if st := s.status(t); st.LastAttempt.Result != "served" || st.Version != version || version == "" {
		t.Errorf("after fix: last attempt %+v, version %q (pxeops version says %q)", st.LastAttempt, st.Version, version)
	}
	_, metrics, _ = s.get("/metrics")
	for _, want := range []string{
		`pxeops_snapshot_info{digest="sha256:`,
		`pxeops_http_requests_total{code="200",endpoint="ipxe"}`,
		`pxeops_http_requests_total{code="404",endpoint="ipxe"}`,
		"pxeops_last_successful_reload_timestamp_seconds ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A Kubernetes ConfigMap mounted as groups/: the files are symlinks into
// ..data, which kubelet swaps atomically to a new directory.
func TestServeConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "profiles/q.yaml", profileWith("v=q"))
	write(t, dir, "groups/..v1/one.yaml", group(mac1))
	gdir := filepath.Join(dir, "groups")
	must(t, os.Symlink("..v1", filepath.Join(gdir, "..data")))
	must(t, os.Symlink("..data/one.yaml", filepath.Join(gdir, "one.yaml")))
	s := startServe(t, dir)
	s.servesScript(t, mac1, " v=1")

	write(t, dir, "groups/..v2/one.yaml", "profile: q\nselector:\n  mac: "+mac1+"\n")
	must(t, os.Symlink("..v2", filepath.Join(gdir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(gdir, "..data_tmp"), filepath.Join(gdir, "..data")))
	must(t, os.RemoveAll(filepath.Join(gdir, "..v1")))
	s.servesScript(t, mac1, " v=q")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// With no file events at all, the periodic rescan still converges.
func TestServeConvergesByRescanAlone(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	s := startServe(t, dir, "--watch=false", "--poll", "200ms")
	s.servesScript(t, mac1, " v=1")
	if s.status(t).Source.Watching {
		t.Errorf("source reports watching with --watch=false")
	}
	write(t, dir, "profiles/p.yaml", profileWith("v=2"))
	s.servesScript(t, mac1, " v=2")
	if strings.Contains(s.logs.String(), "fs event") {
		t.Errorf("file events were seen with --watch=false")
	}
}

// A server whose first tree is invalid starts, says why, is not ready,
// and serves once the tree is fixed.
func TestServeStartsOnInvalidTree(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", "profile: nope\n")
	s := startServe(t, dir)
	s.eventually(t, "the first attempt is reported", func() bool { return s.status(t).LastAttempt != nil })
	if code, body, _ := s.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d %q before any valid tree", code, body)
	}
	if code, _, _ := s.get("/ipxe?mac=" + mac1); code != http.StatusServiceUnavailable {
		t.Errorf("/ipxe = %d before any valid tree, want 503", code)
	}
	write(t, dir, "groups/one.yaml", group(mac1))
	s.servesScript(t, mac1, " v=1")
	if code, _, _ := s.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d after the fix", code)
	}
}

// pxeops never writes into the source tree.
func TestServeLeavesSourceUntouched(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	before := listTree(t, dir)
	s := startServe(t, dir)
	s.servesScript(t, mac1, " v=1")
	if after := listTree(t, dir); after != before {
		t.Errorf("tree changed while serving:\nbefore %s\nafter  %s", before, after)
	}
}

func listTree(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %d %d;", p, info.Size(), info.ModTime().UnixNano())
		}
		return err
	})
	return b.String()
}

func TestServeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--source", "/does/not/exist"},
		{"serve", "--source", "git@git.invalid:fleet.git", "--ssh-key", "/nonexistent"}, // no --known-hosts: refused before any connection
		{"serve", "--source", ".", "--webhook-secret-file", "/etc/hostname"},            // webhooks are for git sources
		{"serve", "--source", ".", "extra"},
	} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	// A webhook secret under 16 characters is refused before anything runs.
	code, _, stderr := runCLI(t, "serve", "--source", "file:///nonexistent.git", "--state-dir", t.TempDir(), "--webhook-secret-file", shortSecret(t))
	if code != exitUsage || !strings.Contains(stderr, "shorter than 16 characters") {
		t.Errorf("short webhook secret: exit %d, %q", code, stderr)
	}
}

// A file that is a symlink is fingerprinted by its target, so editing the
// target in place (here in a hidden directory nobody watches) is seen by
// the rescan even though no directory entry changed.
func TestServeFollowsSymlinkTargets(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "profiles/q.yaml", profileWith("v=q"))
	write(t, dir, ".store/one.yaml", group(mac1))
	write(t, dir, "groups/two.yaml", group(mac2))
	must(t, os.Symlink("../.store/one.yaml", filepath.Join(dir, "groups/one.yaml")))
	s := startServe(t, dir, "--poll", "200ms")
	s.servesScript(t, mac1, " v=1")
	write(t, dir, ".store/one.yaml", "profile: q\nselector:\n  mac: "+mac1+"\n")
	s.servesScript(t, mac1, " v=q")
}

// On shutdown, a download in flight finishes; new connections are refused.
func TestServeShutdownLetsDownloadsFinish(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	assets := t.TempDir()
	const size = 64 << 20
	must(t, os.WriteFile(filepath.Join(assets, "big"), bytes.Repeat([]byte("x"), size), 0o644))
	s := startServe(t, dir, "--assets-dir", assets, "--shutdown-timeout", "20s")
	resp, err := http.Get(s.url + "/assets/big")
	must(t, err)
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s.eventually(t, "the server stops accepting", func() bool {
		_, err := http.Get(s.url + "/healthz")
		return err != nil
	})
	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil || int64(len(first))+rest != size {
		t.Errorf("download cut short by shutdown: %d of %d bytes, %v", int64(len(first))+rest, size, err)
	}
}

// --tftp-addr serves the iPXE directory next to HTTP.
func TestServeTFTP(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	ipxe := t.TempDir()
	write(t, ipxe, "undionly.kpxe", "a BIOS iPXE binary")
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	addr := conn.LocalAddr().String()
	conn.Close()
	s := startServe(t, dir, "--tftp-addr", addr, "--ipxe-dir", ipxe)
	s.servesScript(t, mac1, " v=1")
	c, err := tftp.NewClient(addr)
	must(t, err)
	wt, err := c.Receive("undionly.kpxe", "octet")
	must(t, err)
	var got bytes.Buffer
	wt.WriteTo(&got)
	if got.String() != "a BIOS iPXE binary" {
		t.Errorf("TFTP served %q", got.String())
	}
	if code, _, _ := runCLI(t, "serve", "--source", dir, "--http-addr", "127.0.0.1:0", "--tftp-addr", addr, "--ipxe-dir", filepath.Join(ipxe, "none")); code != exitUsage {
		t.Errorf("missing --ipxe-dir: exit %d, want %d", code, exitUsage)
	}
}

func shortSecret(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "secret")
	must(t, os.WriteFile(f, []byte("short\n"), 0o600))
	return f
}

// SIGHUP reloads: with no watch and an hour's poll, only the signal can
// make serve see an edit.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	// The test's own handler keeps SIGHUP from killing the test binary
	// whether or not serve's is installed (and on code without one).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	// serve installs its handler before it answers HTTP, which startServe waits for.
	s := startServe(t, dir, "--watch=false", "--poll", "1h")
	s.servesScript(t, mac1, " v=1")

	write(t, dir, "profiles/p.yaml", profileWith("v=2"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		_, body, _ := s.get("/ipxe?mac=" + mac1)
		if strings.Contains(body, " v=2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edit was not served within 1s of SIGHUP; script %q; log:\n%s", body, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.eventually(t, "the log records the SIGHUP once", func() bool {
		return strings.Count(s.logs.String(), "SIGHUP: rescanning the source") == 1
	})
}
