package statuspage

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the want.html sections of testdata/*.txtar")

func render(t *testing.T, d Data, refresh bool) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, d, refresh); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestGolden: each testdata/*.txtar holds a Data as JSON ("data.json")
// and the page it renders ("want.html"); -update rewrites the latter.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no testdata/*.txtar")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(raw)
			in, ok := a.Get("data.json")
			if !ok {
				t.Fatal("no data.json section")
			}
			var d Data
			dec := json.NewDecoder(bytes.NewReader(in))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("data.json: %v", err)
			}
			got := render(t, d, false)
			if *update {
				a.Set("want.html", []byte(got))
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, _ := a.Get("want.html")
			if got != string(want) {
				t.Errorf("page differs from want.html (go test -update rewrites it); got:\n%s", got)
			}
		})
	}
}

// hostile is what a tree's author, a DHCP client or an Omaha host could
// put in a field the page shows.
const hostile = `<script>alert("x")</script>"'><img src=x onerror=alert(1)>&amp;`

func TestHostileStringsAreEscaped(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := Data{Now: now, Version: hostile, ServerURL: hostile, Access: hostile, Down: hostile,
		Source:     Source{Kind: hostile, Location: hostile, LastScan: hostile, LastError: hostile},
		Served:     &Served{Revision: hostile, Digest: hostile, Since: now},
		Loading:    &Loading{Revision: hostile, Since: now},
		LastReload: &Reload{Revision: hostile, Result: hostile, Action: hostile, At: now, Diagnostics: []Diagnostic{{File: hostile, Line: 1, Col: 2, Severity: hostile, Message: hostile}}},
		Machines:   []Machine{{MAC: hostile, Group: hostile, Profile: hostile, Revision: hostile, Stage: hostile, State: hostile, LastSeen: now}},
		Unmatched:  []Unmatched{{MAC: hostile, UUID: hostile, Arch: hostile, VendorClass: hostile, Relay: hostile, FirstSeen: now, LastSeen: now, Seen: 1}},
		Omaha: Omaha{Updater: hostile, Error: hostile, Images: []Image{{ID: hostile, Current: hostile, Latest: hostile, State: hostile, Stage: hostile, Error: hostile, Branch: hostile}},
			Census: Census{Hosts: 1, Versions: []Version{{Channel: hostile, Version: hostile, Hosts: 1}},
				Recent: []Host{{MachineID: hostile, Version: hostile, Channel: hostile, Board: hostile, Addr: hostile, LastEvent: hostile, LastContact: now}}}},
	}
	page := render(t, d, false)
	for _, bad := range []string{"<script", "<img", `"'>`, "onerror=alert(1)>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	// Every field came out, escaped once.
	escaped := `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;`
	if n := strings.Count(page, escaped); n < 40 {
		t.Errorf("the hostile string appears escaped %d times, want every field (40 or more):\n%s", n, page)
	}
	if n := strings.Count(page, "<style>"); n != 1 {
		t.Errorf("%d <style> elements, want 1", n)
	}
}

// TestSizeBound: however much Data holds, and however much escaping
// swells it, the page stays under MaxBytes and counts what it left out.
func TestSizeBound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	long := strings.Repeat(`"<`, 5000) // each rune escapes to 5 bytes
	d := Data{Now: now, Version: long, ServerURL: long, Served: &Served{Revision: long, Since: now},
		LastReload: &Reload{Revision: long, Result: long, At: now}}
	for i := range 3000 {
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, i>>8&0xff, i&0xff)
		at := now.Add(-time.Duration(i) * time.Second)
		d.Machines = append(d.Machines, Machine{MAC: mac, Group: long, Profile: long, Revision: long, Stage: long, State: long, LastSeen: at})
		d.Unmatched = append(d.Unmatched, Unmatched{MAC: mac, UUID: long, Arch: long, VendorClass: long, Relay: long, FirstSeen: at, LastSeen: at, Seen: i})
		d.LastReload.Diagnostics = append(d.LastReload.Diagnostics, Diagnostic{File: long, Line: i, Col: i, Severity: long, Message: long})
		d.Omaha.Images = append(d.Omaha.Images, Image{ID: fmt.Sprint(i) + long, Current: long, State: long, Error: long})
		d.Omaha.Census.Versions = append(d.Omaha.Census.Versions, Version{Channel: long, Version: fmt.Sprint(i), Hosts: i})
		d.Omaha.Census.Recent = append(d.Omaha.Census.Recent, Host{MachineID: long, Version: long, Channel: long, Addr: long, LastContact: at})
	}
	d.Omaha.Census.Hosts = 3000
	page := render(t, d, false)
	if len(page) > MaxBytes {
		t.Errorf("page is %d bytes, over MaxBytes %d", len(page), MaxBytes)
	}
	if len(page) < MaxBytes/4 {
		t.Errorf("page is only %d bytes: the test no longer fills it (MaxBytes %d is far from the bound)", len(page), MaxBytes)
	}
	for _, want := range []string{
		fmt.Sprintf(`%d more, see <a href="/v1/machines">`, 3000-MaxMachines),
		fmt.Sprintf(`%d more, see <a href="/v1/discovered">`, 3000-MaxUnmatched),
		fmt.Sprintf(`%d more not shown`, 3000-MaxDiagnostics),
		fmt.Sprintf(`%d more hosts`, 3000-MaxHosts),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<td class="mac">`); n != MaxMachines+MaxUnmatched {
		t.Errorf("%d MAC cells, want %d", n, MaxMachines+MaxUnmatched)
	}
	// The most recent machines are the ones shown.
	if !strings.Contains(page, "52:54:00:00:00:00") || strings.Contains(page, "52:54:00:00:0b:b7") {
		t.Error("the rows shown are not the most recently seen")
	}
}

var styleRE = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

func TestHandler(t *testing.T) {
	now := time.Now()
	h := Handler(func(r *http.Request) Data {
		return Data{Now: now, Version: "v1", Served: &Served{Revision: "abc123", Since: now.Add(-12 * time.Second)}}
	})
	get := func(method, target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
		return w
	}
	w := get("GET", "/")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	if !strings.Contains(body, `<code id="served-revision">abc123</code>`) || !strings.Contains(body, ">12s ago</time>") {
		t.Errorf("page lacks the revision or its age:\n%s", body)
	}
	if strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("page refreshes without ?refresh")
	}
	csp := w.Header().Get("Content-Security-Policy")
	m := styleRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no <style> element")
	}
	// The policy allows the style as served (not as embedded: html/template
	// could have changed it), and nothing remote.
	if want := "style-src '" + hash(m[1]) + "'"; !strings.Contains(csp, want) || !strings.HasPrefix(csp, "default-src 'none';") {
		t.Errorf("CSP %q, want default-src 'none' and %s", csp, want)
	}
	if strings.Contains(csp, "http") || strings.Contains(csp, "*") {
		t.Errorf("CSP %q allows a remote source", csp)
	}
	if w := get("GET", "/?refresh"); !strings.Contains(w.Body.String(), `<meta http-equiv="refresh" content="10">`) || !strings.Contains(w.Body.String(), `<a href="/">stop refreshing</a>`) {
		t.Errorf("?refresh does not refresh:\n%s", w.Body)
	}
	if w := get("HEAD", "/"); w.Code != 200 || w.Header().Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("HEAD / = %d, Content-Length %q, want 200 and %d", w.Code, w.Header().Get("Content-Length"), len(body))
	}
}

func TestWhen(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s ago"}, {12 * time.Second, "12s ago"}, {200 * time.Second, "3m20s ago"},
		{2*time.Hour + 5*time.Minute + 3*time.Second, "2h5m ago"}, {76 * time.Hour, "3d4h ago"}, {-30 * time.Second, "in 30s"},
	} {
		m := when(now, now.Add(-c.d))
		if m.Ago != c.want || m.Abs != now.Add(-c.d).Format(time.RFC3339) {
			t.Errorf("when(-%s) = %+v, want %q", c.d, m, c.want)
		}
	}
	if m := when(now, time.Time{}); m != (moment{}) {
		t.Errorf("zero time = %+v, want none", m)
	}
}

func TestClip(t *testing.T) {
	s := strings.Repeat("é", MaxField+5)
	if got := clip(s); got != strings.Repeat("é", MaxField)+"…" {
		t.Errorf("clip cut at %d runes", len([]rune(got)))
	}
	if s := strings.Repeat("é", MaxField); clip(s) != s {
		t.Error("clip cut a string of MaxField runes")
	}
}
