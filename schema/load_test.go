package schema

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestOversizeFileRefusedUnread(t *testing.T) {
	big := append([]byte("profile: p\nmetadata:\n  x: \""), bytes.Repeat([]byte("a"), MaxFileSize)...)
	_, diags := Load(fstest.MapFS{"groups/big.yaml": {Data: big}}, nil)
	if len(diags) != 1 || !strings.Contains(diags[0].Message, "larger than") || diags[0].File != "groups/big.yaml" {
		t.Fatalf("diags = %v, want one size error for groups/big.yaml", diags)
	}
}

// Every broken file is reported in one run, not just the first.
func TestCollectsErrorsAcrossFiles(t *testing.T) {
	_, diags := Load(fstest.MapFS{
		"groups/a.yaml":   {Data: []byte("profile: missing\n")},
		"groups/b.yaml":   {Data: []byte("profile: [\n")},
		"profiles/p.yaml": {Data: []byte("kernel: ftp://x\n")},
		"images/i.yaml":   {Data: []byte("os: plan9\n")},
	}, nil)
	files := map[string]bool{}
	for _, d := range diags {
		if d.Severity == Error {
			files[d.File] = true
		}
	}
	for _, f := range []string{"groups/a.yaml", "groups/b.yaml", "profiles/p.yaml", "images/i.yaml"} {
		if !files[f] {
			t.Errorf("no error reported for %s; got %v", f, diags)
		}
	}
}

func TestDefaultsFromTags(t *testing.T) {
	tree, diags := Load(fstest.MapFS{"pxeops.yaml": {Data: []byte("omaha:\n  proxy: true\n")}}, nil)
	if diags.Errors() != 0 {
		t.Fatal(diags)
	}
	o := tree.Settings.Omaha
	if o.Server != "https://public.update.flatcar-linux.net/v1/update/" || o.Files.Kernel != "flatcar_production_pxe.vmlinuz" || !o.Proxy || o.Interval.String() != "1h0m0s" {
		t.Errorf("defaults not applied: %+v", o)
	}
}

// Legacy CoreOS images get CoreOS's service, mirror and file names unless
// pxeops.yaml names them; Flatcar images keep Flatcar's.
func TestOmahaForCoreOS(t *testing.T) {
	tree, diags := Load(fstest.MapFS{"pxeops.yaml": {Data: []byte("omaha:\n  mirror: https://mirror.example/{{ .Version }}/\n")}}, nil)
	if diags.Errors() != 0 {
		t.Fatal(diags)
	}
	c := tree.Settings.OmahaFor("coreos")
	if c.Server != coreosServer || c.Files.Kernel != coreosKernel || c.Files.Initrd != coreosInitrd || c.Mirror != "https://mirror.example/{{ .Version }}/" {
		t.Errorf("coreos settings %+v", c)
	}
	if f := tree.Settings.OmahaFor("flatcar"); f.Server != tree.Settings.Omaha.Server || f.Files != tree.Settings.Omaha.Files {
		t.Errorf("flatcar settings changed: %+v", f)
	}
}

func (d Duration) String() string { b, _ := d.MarshalText(); return string(b) }

// FuzzLoad feeds arbitrary bytes as the files of a tree: Load must never
// panic and every diagnostic must name a file of the tree (or a directory).
// The budget and depth limits keep memory bounded whatever the input.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("profile: p\nselector:\n  mac: 52:54:00:00:00:01\n"), []byte("kernel: /assets/k\nargs: [\"{{ .MAC }}\"]\nconfig: {template: t}\n"), []byte("{{ .Metadata.x }}"))
	f.Add([]byte("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"), []byte("image: i\n"), []byte(""))
	f.Add([]byte(strings.Repeat("[", 200)), []byte("---\n---\n"), []byte("{{ template \"x\" }}"))
	f.Add([]byte("profile: p\nmetadata: {a: 1, a: 2}\n"), []byte("kernel: /assets/k\nargs:\n  - \"\\0\"\n"), []byte("#cloud-config\n{{ .Hostname }}"))
	f.Fuzz(func(t *testing.T, group, profile, tmpl []byte) {
		fsys := fstest.MapFS{
			"groups/g.yaml":   {Data: group},
			"profiles/p.yaml": {Data: profile},
			"templates/t":     {Data: tmpl},
		}
		_, diags := Load(fsys, nil)
		for _, d := range diags {
			switch {
			case d.File == "groups" || strings.HasPrefix(d.File, "groups/g.yaml"),
				strings.HasPrefix(d.File, "profiles/p.yaml"), strings.HasPrefix(d.File, "templates/t"):
			default:
				t.Fatalf("diagnostic names a file outside the tree: %v", d)
			}
			if d.Message == "" {
				t.Fatalf("empty message: %+v", d)
			}
		}
	})
}

// Whatever the file system, a file that says it is not a regular file is
// refused before it is read, as an error of the tree, not a retry.
func TestSpecialFilesAreRefused(t *testing.T) {
	_, diags := Load(fstest.MapFS{
		"groups/pipe.yaml":   {Mode: fs.ModeNamedPipe},
		"templates/dev.ign":  {Mode: fs.ModeDevice | fs.ModeCharDevice},
		"profiles/sock.yaml": {Mode: fs.ModeSocket},
	}, nil)
	want := []string{
		"groups/pipe.yaml: error: is a named pipe (FIFO), not a regular file; config files must be regular files",
		"profiles/sock.yaml: error: is a socket, not a regular file; config files must be regular files",
		"templates/dev.ign: error: is a character device, not a regular file; config files must be regular files",
	}
	if diags.Errors() != len(want) || diags.Transient() {
		t.Fatalf("diagnostics: %v", diags)
	}
	for i, w := range want {
		if diags[i].String() != w {
			t.Errorf("diagnostic %d: %s\nwant %s", i, diags[i], w)
		}
	}
}
