// Package fifotest makes named pipes for tests of code that must not
// block on them.
package fifotest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Mkfifo makes a named pipe at path. At cleanup it opens the pipe for
// writing once, which releases any reader the code under test left
// waiting in open(2), so a failing test fails instead of hanging.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// Returns fails t when f has not returned within a few seconds: code that
// refuses a named pipe returns at once, code that opens it waits forever.
// Mkfifo's cleanup then releases f.
func Returns(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still blocked after 5s (waiting on the named pipe?)", what)
	}
}
