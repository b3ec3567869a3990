package httpserver

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/render"
)

// A bracketed IPv6 server URL (--server-url http://[fd77::3]:8080) gives
// scripts whose every URL is that one, bracketed, and a /boot.ipxe that
// waits for an IPv6 address, not an IPv4 one it may never get; an IPv4
// or named URL keeps waiting for ${ip}.
func TestIPv6ServerURL(t *testing.T) {
	const base = "http://[fd77::3]:8080"
	snap, diags := render.Load(context.Background(), fstest.MapFS{
		"profiles/p.yaml":  {Data: []byte("kernel: /assets/k\ninitrd: [/assets/i.gz]\nargs: [\"cfg={{ .ConfigURL }}\"]\nconfig: {template: c.yaml, type: cloud-config}\n")},
		"templates/c.yaml": {Data: []byte("#cloud-config\n")},
		"groups/g.yaml":    {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
	}, render.Options{ServerURL: base, Revision: "rev1"})
	if snap == nil {
		t.Fatal(diags)
	}
	h, err := New(fixedSnapshots{snap}, Options{ServerURL: base})
	must(t, err)
	w := get(t, h, "/ipxe?mac=52:54:00:00:00:01")
	body := w.Body.String()
	for _, want := range []string{"kernel " + base + "/assets/k ", "initrd --name i.gz " + base + "/assets/i.gz\n", "cfg=" + base + "/config?mac=52:54:00:00:00:01"} {
		if w.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("/ipxe = %d %q; want it to contain %q", w.Code, body, want)
		}
	}
	if strings.Contains(body, "fd77::3]") && strings.Count(body, "[fd77::3]") != strings.Count(body, "fd77::3") {
		t.Errorf("an unbracketed IPv6 address in %q", body)
	}
	for url, wait := range map[string]string{base: "isset ${ip6} ||", "http://10.0.0.3:8080": "isset ${ip} ||", "http://pxe.test": "isset ${ip} ||"} {
		h, err := New(fixedSnapshots{snap}, Options{ServerURL: url})
		must(t, err)
		b := get(t, h, "/boot.ipxe").Body.String()
		if !strings.Contains(b, wait) || !strings.Contains(b, "chain --autofree "+url+"/ipxe?mac=") {
			t.Errorf("/boot.ipxe behind %s: %q; want %q and a chain to it", url, b, wait)
		}
	}
}
