package httpserver

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
)

// Paths under LoaderPath reach Loaders as asked, double slash and all:
// the mux would answer it with a redirect, where shim gives up.
func TestLoaderPathIsNotCleaned(t *testing.T) {
	loaders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("loader " + r.URL.Path)) })
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{ServerURL: "http://pxe.test", Loaders: loaders})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/loader/shimx64.efi", "/loader//grubx64.efi"} {
		if w := get(t, h, path); w.Code != 200 || w.Body.String() != "loader "+path {
			t.Errorf("GET %s: %d %q", path, w.Code, w.Body.String())
		}
	}
	if w := get(t, h, "/ipxe?mac=52:54:00:00:00:01"); w.Code != 200 {
		t.Errorf("/ipxe beside the loaders: %d", w.Code)
	}
	h, _ = New(fixedSnapshots{testSnapshot(t)}, Options{ServerURL: "http://pxe.test"})
	if w := get(t, h, "/loader//grubx64.efi"); w.Code == 200 {
		t.Errorf("without Loaders, /loader/ answered %d", w.Code)
	}
}

// /grub is matchbox's: the machine's GRUB config by the same query and
// access rule as /ipxe.
func TestGRUBEndpoint(t *testing.T) {
	snap := loadTestTree(t, fstest.MapFS{
		"profiles/g.yaml": {Data: []byte("loader: grub\nkernel: /assets/k\ninitrd: [/assets/i.gz]\nargs: [console=ttyS0, \"host={{ .Hostname }}\"]\n")},
		"groups/g.yaml":   {Data: []byte("profile: g\nselector: {mac: \"52:54:00:00:00:09\"}\n")},
	})
	h, err := New(fixedSnapshots{snap}, Options{ServerURL: "http://pxe.test"})
	if err != nil {
		t.Fatal(err)
	}
	w := get(t, h, "/grub?mac=52:54:00:00:00:09&hostname=node9")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "'console=ttyS0' 'host=node9'") || !strings.Contains(body, "initrd") || w.Header().Get(RevisionHeader) != "rev1" {
		t.Errorf("/grub: %d %q", w.Code, body)
	}
	if w := get(t, h, "/grub?mac=52:54:00:00:00:77"); w.Code != 404 {
		t.Errorf("/grub for an unknown machine: %d %q", w.Code, w.Body.String())
	}
	if w := get(t, h, "/grub?mac=52:54:00:00:00:09;x=1"); w.Code != 400 {
		t.Errorf("/grub with a bad query: %d", w.Code)
	}
}
