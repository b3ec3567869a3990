package main

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const modulePath = "github.com/pxeops/pxeops"

// `go install github.com/pxeops/pxeops/cmd/pxeops@VERSION` works (a
// replace in go.mod made the go command refuse it), and the binary says
// which version it is. The module comes from a file:// proxy made of this
// work tree, its dependencies from the module cache's download directory,
// which has the proxy's layout: no network.
func TestGoInstallAtVersion(t *testing.T) {
	goCmd, root := goAndModuleRoot(t)
	const v = "v0.0.0-test"
	proxy := t.TempDir()
	writeModuleProxy(t, proxy, root, v)

	cache := strings.TrimSpace(run1(t, root, nil, goCmd, "env", "GOMODCACHE"))
	bin := t.TempDir()
	env := []string{
		"GOPROXY=file://" + filepath.ToSlash(proxy) + ",file://" + filepath.ToSlash(filepath.Join(cache, "cache", "download")),
		// A module cache of its own, so no v0.0.0-test is left in the real
		// one (where a later run would reuse it), writable for t.TempDir's
		// cleanup; -trimpath keeps the compiled packages cacheable across
		// runs although that directory changes.
		"GOMODCACHE=" + t.TempDir(),
		"GOFLAGS=-modcacherw -trimpath",
		"GOSUMDB=off", "GOTOOLCHAIN=local", "GOWORK=off", "GOBIN=" + bin,
	}
	start := time.Now()
	run1(t, t.TempDir(), env, goCmd, "install", modulePath+"/cmd/pxeops@"+v)
	t.Logf("go install took %v", time.Since(start).Round(time.Second))

	out := run1(t, root, nil, filepath.Join(bin, "pxeops"), "version")
	if !strings.HasPrefix(out, "pxeops "+v+" (") {
		t.Errorf("installed pxeops version: %q, want pxeops %s (...)", out, v)
	}
}

// A binary built in a git work tree names its commit, as the go command
// stamps it (-buildvcs=true here: a go env may turn stamping off).
func TestVersionFromGitCheckout(t *testing.T) {
	goCmd, root := goAndModuleRoot(t)
	head := strings.TrimSpace(run1(t, root, nil, "git", "rev-parse", "HEAD"))
	dirty := strings.TrimSpace(run1(t, root, nil, "git", "status", "--porcelain")) != ""
	exe := filepath.Join(t.TempDir(), "pxeops")
	run1(t, root, nil, goCmd, "build", "-buildvcs=true", "-o", exe, "./cmd/pxeops")
	out := run1(t, root, nil, exe, "--version")
	if !strings.Contains(out, " "+head[:12]+" ") || strings.Contains(out, " dirty ") != dirty {
		t.Errorf("pxeops --version built at %s (dirty %v): %q", head[:12], dirty, out)
	}
}

// goAndModuleRoot skips unless this is a long run with the go command and
// git at hand in a git checkout of the module, and returns the go command
// and the module's root.
func goAndModuleRoot(t *testing.T) (goCmd, root string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds pxeops with the go command: not with -short")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	root = filepath.Dir(strings.TrimSpace(run1(t, ".", nil, goCmd, "env", "GOMOD")))
	if err := exec.Command("git", "-C", root, "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git checkout:", root)
	}
	return goCmd, root
}

// writeModuleProxy lays out a GOPROXY directory serving this work tree as
// modulePath@v: list, .info, .mod and the module zip. The zip holds what
// git tracks or would track (untracked files not ignored), less what a
// module zip leaves out: nested modules, vendor directories, and anything
// but regular files.
func writeModuleProxy(t *testing.T, proxy, root, v string) {
	t.Helper()
	dir := filepath.Join(proxy, filepath.FromSlash(modulePath), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("list", []byte(v+"\n"))
	write(v+".info", []byte(`{"Version":"`+v+`","Time":"2026-01-01T00:00:00Z"}`))
	write(v+".mod", gomod)

	files := strings.Split(strings.TrimRight(run1(t, root, nil, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00"), "\x00")
	var nested []string
	for _, f := range files {
		if path.Base(f) == "go.mod" && f != "go.mod" {
			nested = append(nested, path.Dir(f)+"/")
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	n := 0
files:
	for _, f := range files {
		for _, prefix := range nested {
			if strings.HasPrefix(f, prefix) {
				continue files
			}
		}
		if f == "vendor" || strings.HasPrefix(f, "vendor/") || strings.Contains(f, "/vendor/") {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, a symlink, ...
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(modulePath + "@" + v + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	write(v+".zip", buf.Bytes())
	t.Logf("module zip: %d files, %d bytes", n, buf.Len())
}

// run1 runs a command in dir with env added to this process's, within five
// minutes (a first build of pxeops on two busy cores), and returns its standard output; a failure fails the test with
// the command's output.
func run1(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
