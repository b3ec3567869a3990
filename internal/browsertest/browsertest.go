// Package browsertest drives Debian's headless Chromium over the
// DevTools protocol (chromedp) for tests of pages pxeops serves: a page
// is loaded from one origin, and everything the browser reports against
// it (a console error, an exception, an error in the browser's log, a
// request anywhere but that origin) is a problem the test fails on.
package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium is Debian's browser (package chromium).
const Chromium = "/usr/bin/chromium"

// Timeout bounds each step a test runs in the browser.
const Timeout = 30 * time.Second

// Browser is one headless Chromium for a test; each Open is a tab.
type Browser struct {
	ctx context.Context
}

// New starts Chromium for the test and stops it when the test ends; it
// skips the test when Chromium is not installed. The browser may reach
// loopback only: every name but the loopback addresses resolves to nothing, no proxy is asked, and
// its background services (updates, safe browsing, sync) are off.
func New(t testing.TB) *Browser {
	t.Helper()
	path := Chromium
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Skipf("Chromium is not installed (%s, or chromium on PATH; Debian package chromium): %v", Chromium, err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE [::1]"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx (no timeout)
		t.Fatalf("starting %s: %v", path, err)
	}
	return &Browser{ctx: ctx}
}

// Tab is one page loaded in the browser, and what the browser reported
// while it was open.
type Tab struct {
	ctx    context.Context
	origin string

	mu       sync.Mutex
	problems []string
	requests []string
}

// Open loads rawURL in a new tab, closed when the test ends, and waits
// until its body is ready.
func (b *Browser) Open(t testing.TB, rawURL string) *Tab {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tab := &Tab{origin: u.Scheme + "://" + u.Host}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tab.event))
	t.Cleanup(cancel)
	tab.ctx = ctx
	if err := chromedp.Do(ctx); err != nil { // opens the tab, bound to ctx
		t.Fatalf("opening a tab: %v", err)
	}
	tab.Do(t, chromedp.Navigate(rawURL), chromedp.WaitReady(chromedp.CSS("body")))
	return tab
}

// event runs on the tab's reading goroutine: it only records.
func (tab *Tab) event(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, fmt.Sprint(a.Description, string(a.Value)))
			}
			problem = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem = fmt.Sprintf("exception at %s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, d.Text)
		if d.Exception != nil {
			problem += " " + d.Exception.Description
		}
	case *log.EventEntryAdded:
		if e := ev.Entry; e.Level == log.EntryLevelError {
			problem = fmt.Sprintf("browser log (%s): %s %s", e.Source, e.Text, e.URL)
		}
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		tab.mu.Lock()
		tab.requests = append(tab.requests, u)
		tab.mu.Unlock()
		if !strings.HasPrefix(u, tab.origin+"/") && u != tab.origin {
			problem = "request to another origin than " + tab.origin + ": " + u
		}
	}
	if problem != "" {
		tab.mu.Lock()
		tab.problems = append(tab.problems, problem)
		tab.mu.Unlock()
	}
}

// Do runs steps in the tab, each run bounded by Timeout.
func (tab *Tab) Do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("in the browser: %v", err)
	}
}

// Text is the rendered text of the first element matching the CSS
// selector; the test fails when there is none within Timeout.
func (tab *Tab) Text(t testing.TB, selector string) string {
	t.Helper()
	return Run(t, tab, chromedp.Text(chromedp.CSS(selector)))
}

// Run runs one action that returns a value in the tab.
func Run[T any](t testing.TB, tab *Tab, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	return v
}

// Requests are the URLs the tab asked for, in order.
func (tab *Tab) Requests() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.requests...)
}

// Check fails the test for every problem the browser reported so far.
func (tab *Tab) Check(t testing.TB) {
	t.Helper()
	tab.mu.Lock()
	defer tab.mu.Unlock()
	for _, p := range tab.problems {
		t.Error(p)
	}
}

// Screenshot saves the whole page as dir/name.png and logs where.
func (tab *Tab) Screenshot(t testing.TB, dir, name string) string {
	t.Helper()
	png := Run(t, tab, chromedp.FullScreenshot(100)) // quality 100: PNG
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}
