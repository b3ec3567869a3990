package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

func tree(marker string) fstest.MapFS {
	return fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nargs: [console=ttyS0, rev=" + marker + "]\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
	}
}

// Many readers render scripts while snapshots are swapped under them:
// each answer comes whole from one revision. Run with -race.
func TestConcurrentReadersSeeWholeSnapshots(t *testing.T) {
	r := New(render.Options{ServerURL: "http://pxe.test"}, nil, nil)
	a := source.Revision{ID: "A", FS: tree("A")}
	b := source.Revision{ID: "B", FS: tree("B")}
	if r.Apply(context.Background(), a) != ResultServed {
		t.Fatal("tree A not served")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			m := schema.Machine{MAC: "52:54:00:00:00:01"}
			var buf bytes.Buffer
			for !stop.Load() {
				snap := r.Snapshot()
				buf.Reset()
				if err := snap.WriteScript(&buf, snap.Lookup(&m), &m); err != nil {
					errs <- err.Error()
					return
				}
				if !strings.Contains(buf.String(), " rev="+snap.Revision+"\n") {
					errs <- "snapshot " + snap.Revision + " rendered " + buf.String()
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 200 {
		rev := a
		if i%2 == 0 {
			rev = b
		}
		if r.Apply(context.Background(), rev) != ResultServed {
			t.Fatalf("swap %d failed", i)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if reads.Load() == 0 {
		t.Error("readers never ran")
	}
}

func TestInvalidRevisionKeepsLastGood(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(render.Options{}, nil, NewMetrics(reg))
	r.Apply(context.Background(), source.Revision{ID: "good", FS: tree("good")})
	bad := tree("bad")
	bad["groups/g.yaml"] = &fstest.MapFile{Data: []byte("profile: missing\n")}
	if got := r.Apply(context.Background(), source.Revision{ID: "bad", FS: bad}); got != ResultInvalid {
		t.Fatalf("Apply(bad) = %s", got)
	}
	st := r.Status()
	if r.Snapshot().Revision != "good" || st.Served.Revision != "good" || st.LastAttempt.Revision != "bad" ||
		st.LastAttempt.Errors != 1 || !strings.Contains(st.LastAttempt.Action, "needs a human") || st.LastAttempt.Findings[0].Line != 1 {
		t.Errorf("status after a bad revision: %+v / %+v", st.Served, st.LastAttempt)
	}
	if v := testutil.ToFloat64(r.metrics.reloads.WithLabelValues(ResultInvalid)); v != 1 {
		t.Errorf("invalid reloads = %v", v)
	}
	if v := testutil.ToFloat64(r.metrics.info.WithLabelValues("good", r.Snapshot().Digest)); v != 1 {
		t.Errorf("snapshot_info for the good revision = %v", v)
	}
}

// flakyFS fails to open one file for its first failures opens.
type flakyFS struct {
	fs.FS
	failures atomic.Int32
}

func (f *flakyFS) Open(name string) (fs.File, error) {
	if name == "groups/g.yaml" && f.failures.Add(-1) >= 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("input/output error")}
	}
	return f.FS.Open(name)
}

// A tree that cannot be read is retried with backoff until it can; it
// is not reported as needing a human.
func TestUnreadableRevisionIsRetried(t *testing.T) {
	r := New(render.Options{}, nil, nil)
	ffs := &flakyFS{FS: tree("x")}
	ffs.failures.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	r.Offer(source.Revision{ID: "x", FS: ffs})
	deadline := time.Now().Add(10 * time.Second)
	sawRetrying := false
	for r.Snapshot() == nil {
		if a := r.Status().LastAttempt; a != nil && a.Result == ResultRetrying {
			sawRetrying = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("never served; last attempt %+v", r.Status().LastAttempt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawRetrying {
		t.Error("the failed read was not reported as retrying")
	}
}

// Offer never blocks and the newest revision wins.
func TestOfferKeepsLatest(t *testing.T) {
	r := New(render.Options{}, nil, nil)
	for _, id := range []string{"1", "2", "3"} {
		r.Offer(source.Revision{ID: id, FS: tree(id)})
	}
	if got := <-r.pending; got.ID != "3" {
		t.Errorf("pending = %s, want 3", got.ID)
	}
}

// slowTree is a valid tree whose templates take a long while to check:
// groups each run a loop just under the step budget.
func slowTree(groups int) fstest.MapFS {
	fsys := fstest.MapFS{
		"profiles/slow.yaml": {Data: []byte("kernel: /assets/k\nargs: [\"x={{ range 99990 }}{{ end }}{{ .MAC }}\"]\n")},
	}
	for i := range groups {
		fsys[fmt.Sprintf("groups/g%d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, "profile: slow\nselector: {mac: \"52:54:00:00:%02x:%02x\"}\n", i/256, i%256)}
	}
	return fsys
}

// A load still running when a newer revision arrives is abandoned for
// it: a slow (or runaway) tree does not hold back its fix, and /status
// shows the load under way meanwhile.
func TestSlowRevisionIsAbandonedForNewer(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(render.Options{}, nil, NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	r.Offer(source.Revision{ID: "slow", FS: slowTree(400)}) // minutes of template runs
	deadline := time.Now().Add(5 * time.Second)
	var p *Progress
	for p == nil || p.RunningMS < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("no load in progress shown: %+v", r.Status())
		}
		time.Sleep(10 * time.Millisecond)
		p = r.Status().InProgress
	}
	if p.Revision != "slow" {
		t.Errorf("in progress: %+v", p)
	}
	offered := time.Now()
	r.Offer(source.Revision{ID: "fix", FS: tree("fix")})
	for r.Snapshot() == nil || r.Snapshot().Revision != "fix" {
		if time.Since(offered) > 3*time.Second {
			t.Fatalf("the fix was not served; status %+v", r.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := r.Status()
	if st.InProgress != nil || st.LastAttempt.Revision != "fix" {
		t.Errorf("after the fix: %+v / %+v", st.InProgress, st.LastAttempt)
	}
	if v := testutil.ToFloat64(r.metrics.reloads.WithLabelValues(ResultAbandoned)); v != 1 {
		t.Errorf("abandoned reloads = %v", v)
	}
}

// A directory whose groups/ is moved away would turn every machine away:
// it is refused like any invalid tree and the last good one keeps
// serving, until pxeops.yaml says an empty fleet is meant.
func TestEmptiedDirectoryKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	for name, f := range tree("good") {
		writeFile(t, filepath.Join(dir, name), string(f.Data))
	}
	d, err := source.NewDir(dir, source.DirOptions{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := New(render.Options{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	go d.Run(ctx, r.Offer)
	waitFor := func(what string, ok func(Status) bool) Status {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := r.Status()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s; status %+v, last attempt %+v", what, st.Served, st.LastAttempt)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	good := waitFor("the tree is served", func(st Status) bool { return st.Served != nil }).Served.Revision

	if err := os.Rename(filepath.Join(dir, "groups"), filepath.Join(t.TempDir(), "groups")); err != nil {
		t.Fatal(err)
	}
	st := waitFor("the emptied tree is tried", func(st Status) bool { return st.LastAttempt.Revision != good })
	if st.LastAttempt.Result != ResultInvalid || st.LastAttempt.Errors != 1 || st.LastAttempt.Findings[0].File != "groups" ||
		!strings.Contains(st.LastAttempt.Findings[0].Message, "no machine would boot") {
		t.Errorf("attempt %+v", st.LastAttempt)
	}
	if st.Served.Revision != good || r.Snapshot().Revision != good || len(r.Snapshot().Tree.Groups) != 1 {
		t.Errorf("served %+v, want the last good revision %s", st.Served, good)
	}

	writeFile(t, filepath.Join(dir, "pxeops.yaml"), "allowEmpty: true\n")
	st = waitFor("the empty tree is served", func(st Status) bool { return st.Served.Revision != good })
	if st.Served.Groups != 0 || st.LastAttempt.Result != ResultServed || !slices.ContainsFunc(st.LastAttempt.Findings, func(d schema.Diagnostic) bool {
		return d.File == "groups" && d.Severity == schema.Warning
	}) {
		t.Errorf("with allowEmpty: served %+v, attempt %+v", st.Served, st.LastAttempt)
	}
}

func writeFile(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Before any tree was served, a failed revision does not claim that a
// last good one keeps serving.
func TestFailureBeforeFirstServedSaysNothingIsServed(t *testing.T) {
	r := New(render.Options{}, nil, nil)
	bad := tree("bad")
	bad["groups/g.yaml"] = &fstest.MapFile{Data: []byte("profile: missing\n")}
	r.Apply(context.Background(), source.Revision{ID: "bad", FS: bad})
	if a := r.Status().LastAttempt.Action; !strings.HasSuffix(a, "; nothing is served yet") {
		t.Errorf("invalid first revision: action %q", a)
	}
	ffs := &flakyFS{FS: tree("x")}
	ffs.failures.Store(1)
	if got := r.Apply(context.Background(), source.Revision{ID: "x", FS: ffs}); got != ResultRetrying {
		t.Fatalf("unreadable revision: %s", got)
	}
	if a := r.Status().LastAttempt.Action; !strings.HasSuffix(a, "; nothing is served yet") {
		t.Errorf("unreadable first revision: action %q", a)
	}
	r.Apply(context.Background(), source.Revision{ID: "good", FS: tree("good")})
	r.Apply(context.Background(), source.Revision{ID: "bad", FS: bad})
	if a := r.Status().LastAttempt.Action; !strings.HasSuffix(a, "; the last good snapshot keeps serving") {
		t.Errorf("invalid revision after a good one: action %q", a)
	}
}
