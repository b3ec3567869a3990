package matchbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/safefile"
)

func TestReadBounded(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles", "p.json"), []byte(`{"id":"p"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// assets/ is not read: kernels are big and served as they are.
	if err := os.MkdirAll(filepath.Join(dir, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "assets", "vmlinuz"), make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := Read(dir)
	if err != nil || len(files) != 1 || string(files["profiles/p.json"]) != `{"id":"p"}` {
		t.Fatalf("Read = %v, %v", files, err)
	}

	big := filepath.Join(dir, "profiles", "big.json")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("a file over the cap: %v, want ErrTooLarge", err)
	}
	os.Remove(big)

	// A named pipe is refused at once, never waited on.
	if err := syscall.Mkfifo(filepath.Join(dir, "groups"), 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("groups as a named pipe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked on a named pipe")
	}
	os.Remove(filepath.Join(dir, "groups"))
	os.MkdirAll(filepath.Join(dir, "groups"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "groups", "g.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := Read(dir); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("a named pipe for a group: %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked on a named pipe")
	}
}
