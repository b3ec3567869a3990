// Package fifotest makes named pipes for tests of code that must not
// block on them.
package fifotest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Mkfifo makes a named pipe at path. At cleanup it releases whatever the
// code under test left waiting on it, so a failing test fails instead of
// hanging: opening the pipe read-write (which never waits) wakes every
// reader in open(2), removing it makes later opens fail, and closing it
// gives readers in read(2) EOF.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
		os.Remove(path)
		if err == nil {
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
