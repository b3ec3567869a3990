package machinestate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const mac1, mac2 = "52:54:00:00:00:01", "52:54:00:00:00:02"

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSetGetResetReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machines.db")
	s := open(t, path)
	if _, ok := s.Get(mac1); ok {
		t.Fatal("empty store knows mac1")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := State{Installed: true, At: at, Revision: "abc123", Group: "install", Profile: "installer"}
	if err := s.Set(mac1, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(mac2, State{Installed: true, At: at}); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Get(mac1); !ok || got != want {
		t.Errorf("Get = %+v, %v; want %+v", got, ok, want)
	}
	all := s.All()
	if len(all) != 2 || all[mac1] != want {
		t.Errorf("All = %v", all)
	}
	delete(all, mac1) // a copy: the store keeps it
	if _, ok := s.Get(mac1); !ok {
		t.Error("All's map is the store's own")
	}
	if ok, err := s.Reset(mac2); !ok || err != nil {
		t.Errorf("Reset(mac2) = %v, %v", ok, err)
	}
	if ok, err := s.Reset(mac2); ok || err != nil {
		t.Errorf("second Reset(mac2) = %v, %v; want false, nil", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if got, ok := s.Get(mac1); !ok || !got.At.Equal(at) || got.Group != "install" {
		t.Errorf("after reopen: %+v, %v", got, ok)
	}
	if _, ok := s.Get(mac2); ok {
		t.Error("reset machine back after reopen")
	}
}

func TestBounds(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "machines.db"))
	defer s.Close()
	for _, mac := range []string{"", "52-54-00-00-00-01", "52:54:00:00:00:0A", "52:54:00:00:00:01:02:03", "x"} {
		if err := s.Set(mac, State{}); err == nil {
			t.Errorf("Set(%q) accepted", mac)
		}
		if _, err := s.Reset(mac); err == nil {
			t.Errorf("Reset(%q) accepted", mac)
		}
	}
	for _, st := range []State{{Group: strings.Repeat("g", MaxField+1)}, {Profile: "a\nb"}, {Revision: "\xff"}} {
		if err := s.Set(mac1, st); err == nil {
			t.Errorf("Set(%+v) accepted", st)
		}
	}
	s.max = 1
	if err := s.Set(mac1, State{Installed: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(mac2, State{Installed: true}); !errors.Is(err, ErrFull) {
		t.Errorf("Set past the bound: %v, want ErrFull", err)
	}
	if err := s.Set(mac1, State{Installed: true, Group: "g"}); err != nil {
		t.Errorf("rewriting a known machine at the bound: %v", err)
	}
}

// A second pxeops on the same state directory is told who holds it,
// after a bounded wait.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machines.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 5*OpenTimeout {
		t.Errorf("second Open took %v", d)
	}
}

func TestOpenRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machines.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bolt file ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of garbage: %v", err)
	}
}

// Get runs on every boot request.
func TestGetDoesNotAllocate(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "machines.db"))
	defer s.Close()
	if err := s.Set(mac1, State{Installed: true}); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { s.Get(mac1); s.Get(mac2) }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func BenchmarkGet(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "machines.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.Set(mac1, State{Installed: true})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Get(mac1)
		}
	})
}

const childEnv = "PXEOPS_MACHINESTATE_CHILD"

// TestKillMidWrite runs a child process (this test binary again) that
// Sets one machine after another and prints each MAC once Set returned,
// kills it with SIGKILL in the middle of that stream, and reopens the
// database: it opens, and every Set the child saw return is there.
func TestKillMidWrite(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		writeForever(path)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := filepath.Join(t.TempDir(), "machines.db")
	total := 0
	for round, kill := range []int{1, 37, 150} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillMidWrite$")
		cmd.Env = append(os.Environ(), childEnv+"="+path, "PXEOPS_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if mac, ok := strings.CutPrefix(sc.Text(), "set "); ok {
				acked = append(acked, mac)
				if len(acked) == kill {
					// The child is writing the next one right now.
					cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
		}
		cmd.Wait()
		if len(acked) < kill {
			t.Fatalf("round %d: child stopped after %d Sets", round, len(acked))
		}
		s, err := Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for _, mac := range acked {
			if st, ok := s.Get(mac); !ok || !st.Installed || st.Group != fmt.Sprint("round-", round) {
				t.Errorf("round %d: %s acknowledged but %+v, %v after kill -9", round, mac, st, ok)
			}
		}
		total += len(acked)
		if n := len(s.All()); n < total {
			t.Errorf("round %d: %d machines, want at least %d", round, n, total)
		}
		s.Close()
	}
}

// writeForever is the child: it Sets machines until killed.
func writeForever(path string) {
	s, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	round, _ := strconv.Atoi(os.Getenv("PXEOPS_ROUND"))
	for i := 0; ; i++ {
		mac := fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", round, i>>16&0xff, i>>8&0xff, i&0xff)
		if err := s.Set(mac, State{Installed: true, At: time.Now(), Group: fmt.Sprint("round-", round), Profile: "installer"}); err != nil {
			fmt.Println("set failed:", err)
			os.Exit(1)
		}
		fmt.Println("set " + mac)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(mac1, []byte(`{"installed":true,"at":"2026-01-02T03:04:05Z","revision":"abc","group":"g","profile":"p"}`))
	f.Add(mac1, []byte(`{"installed":true,"group":"a\nb"}`))
	f.Add("52-54-00-00-00-01", []byte(`{}`))
	f.Add(mac2, []byte(`{"at":"yesterday"}`))
	f.Fuzz(func(t *testing.T, mac string, v []byte) {
		st, err := decode(mac, v)
		if err != nil {
			return
		}
		// What decode accepts, Set accepts, and it reads back the same.
		if checkMAC(mac) != nil || st.check() != nil {
			t.Fatalf("decode accepted %q %q that Set refuses", mac, v)
		}
	})
}
