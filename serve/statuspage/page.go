package statuspage

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The page's bounds: rows beyond them are counted, not shown, and every
// string is cut at MaxField runes, so a page never exceeds MaxBytes
// whatever Data holds (TestSizeBound).
const (
	MaxMachines    = 1000
	MaxUnmatched   = 1000
	MaxDiagnostics = 100
	MaxImages      = 200
	MaxVersions    = 100
	MaxHosts       = 100
	MaxField       = 160
	MaxBytes       = 12 << 20
)

// RefreshSeconds is how often the page reloads itself when asked to
// (?refresh): a meta refresh, so it needs no script.
const RefreshSeconds = 10

//go:embed page.html.tmpl style.css
var files embed.FS

// style is the page's one stylesheet, inline; the policy allows exactly
// it by its hash, so an injected style would not apply either.
var style = mustRead("style.css")

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"clip": clip,
	"when": when,
	"pos":  pos,
}).ParseFS(files, "page.html.tmpl"))

// policy forbids everything but the inline stylesheet: no script, no
// image, font or frame, no request anywhere, not even to this server.
var policy = "default-src 'none'; style-src '" + hash(style) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded: cannot happen in a built binary
	}
	return string(b)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Handler serves the page of what data returns, asked once a request.
func Handler(data func(r *http.Request) Data) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := Render(&buf, data(r), r.URL.Query().Has("refresh")); err != nil {
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Write(buf.Bytes())
	})
}

// Render writes the page of d; refresh makes it reload itself every
// RefreshSeconds.
func Render(w *bytes.Buffer, d Data, refresh bool) error {
	return page.Execute(w, newView(d, refresh))
}

// view is Data cut to the page's bounds and sorted as shown.
type view struct {
	Data
	Refresh        bool
	RefreshSeconds int
	Style          template.CSS
	MachinesMore   int
	UnmatchedMore  int
	DiagMore       int
	ImagesMore     int
	VersionsMore   int
	HostsMore      int
}

func newView(d Data, refresh bool) view {
	v := view{Data: d, Refresh: refresh, RefreshSeconds: RefreshSeconds, Style: template.CSS(style)}
	v.Machines = slices.Clone(d.Machines)
	slices.SortStableFunc(v.Machines, func(a, b Machine) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), strings.Compare(a.MAC, b.MAC))
	})
	v.Machines, v.MachinesMore = bound(v.Machines, MaxMachines)
	v.Unmatched = slices.Clone(d.Unmatched)
	slices.SortStableFunc(v.Unmatched, func(a, b Unmatched) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), strings.Compare(a.MAC, b.MAC))
	})
	v.Unmatched, v.UnmatchedMore = bound(v.Unmatched, MaxUnmatched)
	if d.LastReload != nil {
		r := *d.LastReload
		r.Diagnostics, v.DiagMore = bound(r.Diagnostics, MaxDiagnostics)
		v.LastReload = &r
	}
	v.Omaha.Images = slices.Clone(d.Omaha.Images)
	slices.SortStableFunc(v.Omaha.Images, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	v.Omaha.Images, v.ImagesMore = bound(v.Omaha.Images, MaxImages)
	v.Omaha.Census.Versions = slices.Clone(d.Omaha.Census.Versions)
	slices.SortStableFunc(v.Omaha.Census.Versions, func(a, b Version) int {
		return cmp.Or(strings.Compare(a.Channel, b.Channel), strings.Compare(a.Version, b.Version))
	})
	v.Omaha.Census.Versions, v.VersionsMore = bound(v.Omaha.Census.Versions, MaxVersions)
	v.Omaha.Census.Recent, v.HostsMore = bound(d.Omaha.Census.Recent, MaxHosts)
	return v
}

// bound returns at most max of s and how many it left out.
func bound[T any](s []T, max int) ([]T, int) {
	if len(s) <= max {
		return s, 0
	}
	return s[:max], len(s) - max
}

// clip cuts s to MaxField runes.
func clip(s string) string {
	if len(s) <= MaxField || utf8.RuneCountInString(s) <= MaxField {
		return s
	}
	n := 0
	for i := range s {
		if n == MaxField {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// moment is a time as shown: how long ago, the absolute time on hover.
type moment struct {
	Ago, Abs string
}

// when is t relative to now ("12s ago", "in 30s"); zero reads "never".
func when(now, t time.Time) moment {
	if t.IsZero() {
		return moment{}
	}
	abs := t.UTC().Format(time.RFC3339)
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return moment{Ago: "in " + short(-d), Abs: abs}
	}
	return moment{Ago: short(d) + " ago", Abs: abs}
}

// short is d in its two largest units: 12s, 3m4s, 2h5m, 4d3h.
func short(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

// pos is where a diagnostic points: file:line:col as far as known.
func pos(d Diagnostic) string {
	switch {
	case d.Line == 0:
		return clip(d.File)
	case d.Col == 0:
		return fmt.Sprintf("%s:%d", clip(d.File), d.Line)
	}
	return fmt.Sprintf("%s:%d:%d", clip(d.File), d.Line, d.Col)
}
