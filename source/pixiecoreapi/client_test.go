package pixiecoreapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/source"
)

const (
	macA = "52:54:00:00:00:0a"
	macB = "52:54:00:00:00:0b"
)

// api is a small Pixiecore API server: answers by MAC, counting requests.
func api(t *testing.T, answers map[string]string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		mac, ok := strings.CutPrefix(r.URL.Path, "/api/v1/boot/")
		body, found := answers[mac]
		switch {
		case !ok || !found:
			http.NotFound(w, r)
		case body == "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case body == "huge":
			w.Write([]byte(`{"kernel": "/k", "message": "`))
			w.Write(bytes.Repeat([]byte("x"), MaxBody))
			w.Write([]byte(`"}`))
		default:
			w.Write([]byte(body))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestAsk(t *testing.T) {
	const (
		mSlow = "52:54:00:00:00:01"
		mHuge = "52:54:00:00:00:02"
		mBad  = "52:54:00:00:00:03"
		mMap  = "52:54:00:00:00:04"
		mTmpl = "52:54:00:00:00:05"
		mLoop = "52:54:00:00:00:06"
	)
	srv, _ := api(t, map[string]string{
		macA:  `{"kernel": "files/vmlinuz", "initrd": ["/abs/initrd.img", "https://other.test/i2"], "cmdline": "console=ttyS0 quiet", "message": "hi\nthere"}`,
		mSlow: "slow",
		mHuge: "huge",
		mBad:  `{"initrd": ["x"]}`,
		mMap:  `{"kernel": "http://k.test/k", "cmdline": {"b": "two words", "a": true, "off": false, "cfg": {"url": "cfg/x.ign"}}}`,
		mTmpl: `{"kernel": "http://k.test/k", "cmdline": "ignition.config.url={{ URL \"ign/x\" }} x={{ \"{{\" }}y"}`,
		mLoop: `{"kernel": "http://k.test/k", "cmdline": "{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}"}`,
	})
	c, err := New(srv.URL+"/api", Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/api/"
	a := c.Ask(context.Background(), strings.ToUpper(macA))
	if !a.Boot || a.Kernel != base+"files/vmlinuz" || strings.Join(a.Initrds, " ") != srv.URL+"/abs/initrd.img https://other.test/i2" ||
		strings.Join(a.Args, "|") != "console=ttyS0|quiet" || a.Message != "hi there" {
		t.Errorf("relative URLs: %+v", a)
	}
	if a := c.Ask(context.Background(), mMap); !a.Boot || strings.Join(a.Args, "|") != "a|b=two|words|cfg="+base+"cfg/x.ign" {
		t.Errorf("map cmdline: %+v", a) // a string value is verbatim, so its space splits it, as on Pixiecore's command line
	}
	if a := c.Ask(context.Background(), mTmpl); !a.Boot || strings.Join(a.Args, "|") != "ignition.config.url="+base+"ign/x|x={{y" {
		t.Errorf("template cmdline: %+v", a)
	}
	start := time.Now()
	for mac, why := range map[string]string{
		macB:  "404 Not Found",
		mSlow: "deadline exceeded",
		mHuge: "over 65536 bytes",
		mBad:  "no kernel",
		mLoop: "only URL and string actions",
		"x":   "not a MAC",
	} {
		if a := c.Ask(context.Background(), mac); a.Boot || !strings.Contains(a.Why, why) {
			t.Errorf("%s: %+v, want not booted because %q", mac, a, why)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the slow API held Ask for %s; the timeout is 300ms", took)
	}
}

// Answers are cached for the TTL, and concurrent asks share a request.
func TestAskCaches(t *testing.T) {
	srv, n := api(t, map[string]string{macA: `{"kernel": "http://k.test/k"}`})
	c, _ := New(srv.URL+"/api", Options{TTL: time.Hour})
	now := time.Now()
	c.now = func() time.Time { return now }
	done := make(chan Answer)
	for range 8 {
		go func() { done <- c.Ask(context.Background(), macA) }()
	}
	for range 8 {
		if a := <-done; !a.Boot {
			t.Fatalf("%+v", a)
		}
	}
	c.Ask(context.Background(), macB)
	c.Ask(context.Background(), macB)
	if got := n.Load(); got != 2 {
		t.Errorf("%d requests for 2 MACs asked 10 times within the TTL, want 2", got)
	}
	now = now.Add(2 * time.Hour)
	c.Ask(context.Background(), macA)
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests after the TTL, want 3", got)
	}
}

// The source's tree serves exactly the machines the API boots, through
// the same load and render as any tree.
func TestSourceServesWhatTheAPISays(t *testing.T) {
	answers := map[string]string{macA: `{"kernel": "/k/vmlinuz", "initrd": ["i.img"], "cmdline": "console=ttyS0 a={{\"{{\"}}b"}`}
	srv, _ := api(t, answers)
	c, _ := New(srv.URL+"/api/", Options{TTL: time.Nanosecond})
	s := NewSource(c)
	revs := make(chan source.Revision, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, func(r source.Revision) { revs <- r })
	load := func() *render.Snapshot {
		t.Helper()
		select {
		case r := <-revs:
			snap, diags := render.Load(ctx, r.FS, render.Options{ServerURL: "http://pxe.test"})
			if snap == nil {
				t.Fatalf("tree does not load: %v", diags)
			}
			return snap
		case <-time.After(5 * time.Second):
			t.Fatal("no revision")
			return nil
		}
	}
	if snap := load(); snap.MayServe(macA, "") {
		t.Error("the first tree serves a machine nobody asked about")
	}
	if a := s.Learn(ctx, macA); !a.Boot {
		t.Fatalf("%+v", a)
	}
	s.Learn(ctx, macB) // 404: no change, no revision
	snap := load()
	if !snap.MayServe(macA, "") || snap.MayServe(macB, "") {
		t.Errorf("MayServe: %s %v, %s %v", macA, snap.MayServe(macA, ""), macB, snap.MayServe(macB, ""))
	}
	var b strings.Builder
	m := &render.Machine{MAC: macA}
	if err := snap.WriteScript(&b, snap.Lookup(m), m); err != nil {
		t.Fatal(err)
	}
	want := "kernel " + srv.URL + "/k/vmlinuz initrd=i.img console=ttyS0 a={{b\n"
	if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), srv.URL+"/api/i.img") {
		t.Errorf("script:\n%s\nwant %q", b.String(), want)
	}
	delete(answers, macA) // the API stops booting it
	s.Learn(ctx, macA)
	if snap := load(); snap.MayServe(macA, "") {
		t.Error("a machine the API no longer boots is still served")
	}
	if st := s.State(); st.Kind != "pixiecore-api" || len(s.Booted()) != 0 {
		t.Errorf("state %+v, booted %v", st, s.Booted())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"kernel": "files/vmlinuz", "initrd": ["/abs/initrd.img"], "cmdline": "console=ttyS0"}`,
		`{"kernel": "http://k.test/k", "cmdline": {"a": true, "b": "c", "u": {"url": "x"}}}`,
		`{"kernel": "k", "cmdline": "x={{ URL \"y\" }} {{\"{{\"}}"}`,
		`{"kernel": "k", "cmdline": "{{range .}}{{end}}"}`,
		`{"kernel": "javascript:x"}`, `{}`, `[]`, `{"kernel": "k"} {}`,
	} {
		f.Add([]byte(s))
	}
	base, _ := url.Parse("http://api.test/pfx/")
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := Parse(body, base)
		if err != nil {
			return
		}
		for _, u := range append([]string{a.Kernel}, a.Initrds...) {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("not an http(s) URL: %q", u)
			}
		}
		for _, arg := range a.Args {
			if arg == "" || strings.ContainsAny(arg, " \t\n\x00") {
				t.Fatalf("argument %q", arg)
			}
		}
		if n := len(strings.Join(a.Args, " ")); n > MaxCmdline {
			t.Fatalf("command line of %d bytes", n)
		}
	})
}
