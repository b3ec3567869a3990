package static

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/source"
)

func TestTreeTakesArgsLiterally(t *testing.T) {
	fsys, err := Tree(Boot{Kernel: "/assets/0/vmlinuz", Initrds: []string{"https://h.test/i.img"}, Args: []string{`a="b: c"`, "x={{y}}", "#no-comment"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "profiles/boot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kernel": "/assets/0/vmlinuz"`, `"https://h.test/i.img"`, `"a=\"b: c\""`, `"x={{\"{{\"}}y}}"`, `"#no-comment"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("profile lacks %s:\n%s", want, b)
		}
	}
	if _, err := fs.ReadDir(fsys, "groups"); err != nil {
		t.Error(err)
	}
	if _, err := Tree(Boot{}); err == nil {
		t.Error("a tree without a kernel was built")
	}
}

// Run emits once and keeps running until the end: a source that returns
// has stopped, to the daemon.
func TestSourceEmitsOnceAndWaits(t *testing.T) {
	fsys, _ := Tree(Boot{Kernel: "https://h.test/k"})
	other, _ := Tree(Boot{Kernel: "https://h.test/k2"})
	s, err := New("boot", fsys)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := New("boot", other)
	ctx, cancel := context.WithCancel(context.Background())
	var got []source.Revision
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(r source.Revision) { got = append(got, r) }) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned before the end: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].FS == nil || got[0].ID == "" || got[0].ID == s2.rev.ID {
		t.Errorf("revisions %+v; want one, named by its content (other tree: %s)", got, s2.rev.ID)
	}
	if st := s.State(); st.Kind != "static" || st.Location != "boot" {
		t.Errorf("state %+v", st)
	}
}
