package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"github.com/pxeops/pxeops/schema"
)

// mountSecret swaps dir to values as the kubelet does: a new timestamped
// directory, ..data re-pointed with one rename, a link per key.
func mountSecret(t *testing.T, dir, ts string, values map[string]string) {
	t.Helper()
	for k, v := range values {
		writeFile(t, dir, filepath.Join(ts, k), v)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range values {
		if _, err := os.Lstat(filepath.Join(dir, k)); err != nil {
			if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func secretOf(t *testing.T, rev Revision, name string) string {
	t.Helper()
	fsys := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nconfig: {template: c, type: raw}\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\n")},
		"templates/c":     {Data: []byte(`{{ secret "` + name + `" }}`)},
	}
	tr, diags := schema.LoadWith(context.Background(), fsys, nil, rev.Secrets)
	if diags.Errors() > 0 {
		t.Fatalf("%v", diags)
	}
	var b strings.Builder
	if err := tr.Profiles["p"].WriteConfig(context.Background(), &b, &schema.TemplateData{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A Kubernetes Secret mount is read through ..data, whole; a swap is a
// new ID; the ID says nothing about the values and is the same for the
// same set.
func TestSecretsDirKubernetes(t *testing.T) {
	dir := t.TempDir()
	mountSecret(t, dir, "..2026_01_01_a", map[string]string{"etcd-token": "one\n", "key": "k"})
	d, err := NewSecretsDir(dir, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r1, err := d.Once()
	if err != nil {
		t.Fatal(err)
	}
	if got := r1.Secrets.Names(); len(got) != 2 || got[0] != "etcd-token" || got[1] != "key" {
		t.Errorf("names %v", got)
	}
	if got := secretOf(t, r1, "etcd-token"); got != "one\n" {
		t.Errorf("value %q: want the file's bytes exactly", got)
	}
	again, _ := d.Once()
	if again.ID != r1.ID || !strings.HasPrefix(r1.ID, "secrets:") || strings.Contains(r1.ID, "one") {
		t.Errorf("IDs %q, %q", r1.ID, again.ID)
	}
	mountSecret(t, dir, "..2026_01_01_b", map[string]string{"etcd-token": "two", "key": "k"})
	os.RemoveAll(filepath.Join(dir, "..2026_01_01_a"))
	r2, err := d.Once()
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID == r1.ID || secretOf(t, r2, "etcd-token") != "two" {
		t.Errorf("after the swap: ID %q (was %q), value %q", r2.ID, r1.ID, secretOf(t, r2, "etcd-token"))
	}
	// ..data re-pointed in place (no rename) is followed too.
	writeFile(t, dir, "..2026_01_01_c/etcd-token", "three")
	writeFile(t, dir, "..2026_01_01_c/key", "k3")
	os.Remove(filepath.Join(dir, "..data"))
	if err := os.Symlink("..2026_01_01_c", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	r3, _ := d.Once()
	if secretOf(t, r3, "etcd-token") != "three" || secretOf(t, r3, "key") != "k3" {
		t.Errorf("values not read from ..data's target")
	}
}

// A plain directory (a Vault agent's) works too; what is not a regular
// file of a safe name, or is too big, fails the scan with the file's
// name and never its content, and a named pipe is never waited on.
func TestSecretsDirRefuses(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "v")
	writeFile(t, dir, ".hidden", "skipped")
	d, err := NewSecretsDir(dir, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if rev, err := d.Once(); err != nil || len(rev.Secrets.Names()) != 1 {
		t.Fatalf("%v %v", rev.Secrets, err)
	}
	for _, c := range []struct {
		name string
		make func(path string)
		want string
	}{
		{"too-big", func(p string) { os.WriteFile(p, make([]byte, schema.MaxSecretSize+1), 0o644) }, "too-big: file too large"},
		{"a dir", func(p string) { os.Mkdir(p, 0o755) }, `invalid secret name "a dir"`},
		{"sub", func(p string) { os.Mkdir(p, 0o755) }, "sub: is a directory"},
		{"pipe", func(p string) { fifotest.Mkfifo(t, p) }, "pipe: is a named pipe"},
	} {
		p := filepath.Join(dir, c.name)
		c.make(p)
		fifotest.Returns(t, "scan", func() {
			if _, err := d.Once(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.name, err, c.want)
			}
		})
		os.RemoveAll(p)
	}
}

// WithSecrets serves tree and secrets together: nothing before both are
// read, then a new revision for a change of either; Trigger rescans the
// secrets (SIGHUP).
func TestWithSecrets(t *testing.T) {
	tdir, sdir := t.TempDir(), t.TempDir()
	writeFile(t, tdir, "profiles/p.yaml", "kernel: /assets/k\n")
	writeFile(t, sdir, "token", "v1")
	tree, err := NewDir(tdir, DirOptions{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := NewSecretsDir(sdir, DirOptions{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	src := WithSecrets(tree, sec)
	var mu sync.Mutex
	var revs []Revision
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- src.Run(ctx, func(r Revision) { mu.Lock(); revs = append(revs, r); mu.Unlock() })
	}()
	wait := func(n int) Revision {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			if len(revs) >= n {
				r := revs[n-1]
				mu.Unlock()
				return r
			}
			mu.Unlock()
		}
		t.Fatalf("no revision %d", n)
		return Revision{}
	}
	r1 := wait(1)
	if r1.FS == nil || r1.Secrets == nil || !strings.Contains(r1.ID, "+secrets:") {
		t.Fatalf("first revision %+v", r1)
	}
	writeFile(t, sdir, "token", "v2")
	src.Trigger()
	r2 := wait(2)
	if r2.ID == r1.ID || secretOf(t, r2, "token") != "v2" || !strings.HasPrefix(r2.ID, strings.Split(r1.ID, "+")[0]+"+") {
		t.Errorf("after the secret changed: %q (was %q)", r2.ID, r1.ID)
	}
	if st := src.State(); st.Secrets == nil || st.Secrets.Kind != "secrets" {
		t.Errorf("state %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
