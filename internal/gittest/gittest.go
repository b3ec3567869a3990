// Package gittest makes real git repositories with the git binary for
// tests: a work repository that commits and pushes to a bare remote,
// reachable over file://, a git daemon or git http-backend on loopback.
package gittest

import (
	"bytes"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Remote is a bare repository and a work repository that pushes to it.
type Remote struct {
	t    testing.TB
	Dir  string // holds fleet.git (bare) and work/
	Bare string
	Work string
}

// New makes an empty bare remote and a work repository on branch main.
func New(t testing.TB) *Remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install git); .ci/run installs it")
	}
	dir := t.TempDir()
	r := &Remote{t: t, Dir: dir, Bare: filepath.Join(dir, "fleet.git"), Work: filepath.Join(dir, "work")}
	r.git(dir, "init", "-q", "--bare", "-b", "main", r.Bare)
	r.git(dir, "init", "-q", "-b", "main", r.Work)
	r.Git("config", "user.email", "test@pxeops.invalid")
	r.Git("config", "user.name", "pxeops test")
	r.Git("config", "commit.gpgsign", "false")
	r.Git("remote", "add", "origin", r.Bare)
	return r
}

func (r *Remote) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// Git runs git in the work repository and returns its output.
func (r *Remote) Git(args ...string) string { return r.git(r.Work, args...) }

// Commit writes files (an empty body deletes the file), commits
// everything on the current branch, pushes it, and returns the hash.
func (r *Remote) Commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.Work, name)
		if body == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	r.Git("push", "-q", "--force", "origin", "HEAD")
	return r.Git("rev-parse", "HEAD")
}

// FileURL is the bare remote as a file:// URL.
func (r *Remote) FileURL() string { return "file://" + r.Bare }

// Daemon serves the bare remote with git daemon on a loopback port until
// stop or the end of the test, and returns its git:// URL.
func (r *Remote) Daemon() (url string, stop func()) {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+r.Dir,
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), r.Dir)
	// `git daemon` runs git-daemon as a child: a process group lets stop
	// take both down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("git daemon: %v", err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	r.t.Cleanup(stop)
	for range 100 { // until it accepts
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "git://127.0.0.1:" + strconv.Itoa(port) + "/fleet.git", stop
}

// HTTP serves the bare remote with git http-backend (fetch and push) on
// loopback until the end of the test, behind a server that wants token
// as the Basic auth password, and returns its URL.
func (r *Remote) HTTP(token string) string {
	r.t.Helper()
	execPath := r.git(r.Dir, "--exec-path")
	r.git(r.Bare, "config", "http.receivepack", "true")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + r.Dir, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, pass, ok := req.BasicAuth(); !ok || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	r.t.Cleanup(srv.Close)
	return srv.URL + "/fleet.git"
}
