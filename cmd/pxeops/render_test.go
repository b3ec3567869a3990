package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/httpserver"
)

type fixedSnapshot struct{ s *render.Snapshot }

func (f fixedSnapshot) Snapshot() *render.Snapshot { return f.s }

// render shows each answer exactly as the HTTP server serves it: every
// body the server gives the machine appears whole under its heading. The
// Pixiecore API asks by MAC alone, so it may answer from another group.
func TestRenderShowsWhatTheServerServes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"profiles/a.yaml":   "kernel: /assets/k\ninitrd: [/assets/i.gz]\nargs: [console=ttyS0, \"host={{ .Hostname }}\"]\nconfig: {template: t.sh}\n",
		"profiles/b.yaml":   "kernel: /assets/k2\nargs: [role=b]\n",
		"templates/t.sh":    "#!/bin/sh\necho {{ .Group }} {{ .Hostname }}\n",
		"groups/host.yaml":  "profile: a\nselector: {mac: \"52:54:00:00:00:01\", hostname: node1}\nmetadata: {role: etcd, net: {ip: 10.0.0.1}}\n",
		"groups/bymac.yaml": "profile: b\nselector: {mac: \"52:54:00:00:00:01\"}\nmetadata: {x: y}\n",
		"groups/solo.yaml":  "profile: b\nselector: {hostname: solo}\n",
	})
	snap, diags := render.Load(context.Background(), os.DirFS(dir), render.Options{ServerURL: "http://pxe.test"})
	if snap == nil {
		t.Fatal(diags)
	}
	h, err := httpserver.New(fixedSnapshot{snap}, httpserver.Options{ServerURL: "http://pxe.test"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(target string, code int) string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		body, _ := io.ReadAll(w.Body)
		if w.Code != code {
			t.Fatalf("GET %s: %d %s, want %d", target, w.Code, body, code)
		}
		return string(body)
	}
	for _, c := range []struct {
		args  []string
		query string
		want  []string // headings, each followed by the body of the next GET (or by itself)
		gets  []string
	}{{
		args:  []string{"--mac", "52-54-00-00-00-01", "--hostname", "node1", "--label", "rack=r7"},
		query: "mac=52:54:00:00:00:01&hostname=node1&rack=r7",
		want: []string{"--- iPXE script (/ipxe) ---\n", "--- config (/config, raw) ---\n", "--- metadata (/metadata) ---\n",
			"--- Pixiecore API (/pixiecore/v1/boot/52:54:00:00:00:01) ---\n(by MAC alone: bymac, profile b)\n"},
		gets: []string{"/ipxe?", "/config?", "/metadata?", "/pixiecore/v1/boot/52:54:00:00:00:01"},
	}, {
		args:  []string{"--mac", "52:54:00:00:00:09", "--hostname", "solo"},
		query: "mac=52:54:00:00:00:09&hostname=solo",
		want: []string{"--- iPXE script (/ipxe) ---\n", "--- config (/config, ) ---\n(none: the profile has no config)\n",
			"--- metadata (/metadata) ---\n", "--- Pixiecore API (/pixiecore/v1/boot/52:54:00:00:00:09) ---\n(none: no group matches mac=52:54:00:00:00:09 alone and there is no default group)\n"},
		gets: []string{"/ipxe?", "", "/metadata?", ""},
	}, {
		args:  []string{"--hostname", "solo"},
		query: "hostname=solo",
		want:  []string{"--- metadata (/metadata) ---\n", "--- Pixiecore API (/pixiecore/v1/boot/MAC) ---\n(none: it asks by MAC; give --mac)\n"},
		gets:  []string{"/metadata?", ""},
	}} {
		code, out, errOut := runCLI(t, append(append([]string{"render", "--server-url", "http://pxe.test"}, c.args...), dir)...)
		if code != exitOK {
			t.Fatalf("render %v: exit %d: %s", c.args, code, errOut)
		}
		for i, heading := range c.want {
			want := heading
			if target := c.gets[i]; target != "" {
				if strings.HasSuffix(target, "?") {
					target += c.query
				}
				want += get(target, 200)
			}
			if i := strings.Index(out, want); i >= 0 {
				rest := strings.TrimLeft(out[i+len(want):], "\n")
				if rest == "" || strings.HasPrefix(rest, "--- ") {
					continue
				}
			}
			t.Errorf("render %v lacks\n%s\nas a whole section in\n%s", c.args, want, out)
		}
	}
	get("/pixiecore/v1/boot/52:54:00:00:00:09", 404)
	get("/config?mac=52:54:00:00:00:09&hostname=solo", 404)
}
