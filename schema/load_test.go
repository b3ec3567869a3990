package schema

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestOversizeFileRefusedUnread(t *testing.T) {
	big := append([]byte("profile: p\nmetadata:\n  x: \""), bytes.Repeat([]byte("a"), MaxFileSize)...)
	_, diags := Load(context.Background(), fstest.MapFS{"groups/big.yaml": {Data: big}}, nil)
	if len(diags) != 1 || !strings.Contains(diags[0].Message, "larger than") || diags[0].File != "groups/big.yaml" {
		t.Fatalf("diags = %v, want one size error for groups/big.yaml", diags)
	}
}

// Every broken file is reported in one run, not just the first.
func TestCollectsErrorsAcrossFiles(t *testing.T) {
	_, diags := Load(context.Background(), fstest.MapFS{
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

// A tree no machine can boot from is refused, unless pxeops.yaml says it
// is meant; a broken group file is not also reported as a missing fleet.
func TestEmptyFleet(t *testing.T) {
	profile := &fstest.MapFile{Data: []byte("kernel: /assets/k\n")}
	for _, c := range []struct {
		name string
		fsys fstest.MapFS
		want string // the fleet diagnostic, "" for none
	}{
		{"nothing", fstest.MapFS{"README.md": {Data: []byte("hi")}}, "error: no groups/ and no profiles/"},
		{"profiles only", fstest.MapFS{"profiles/p.yaml": profile}, "error: no groups/: no machine would boot"},
		{"allowEmpty", fstest.MapFS{"pxeops.yaml": {Data: []byte("allowEmpty: true\n")}}, "warning: no groups/: no machine boots"},
		{"broken group", fstest.MapFS{"profiles/p.yaml": profile, "groups/g.yaml": {Data: []byte("profile: [\n")}}, ""},
		{"unreadable groups", fstest.MapFS{"profiles/p.yaml": profile, "groups": {Data: []byte("a file")}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, diags := Load(context.Background(), c.fsys, nil)
			var got []string
			for _, d := range diags {
				if d.File == "groups" && strings.Contains(d.Message, "no groups/") {
					got = append(got, string(d.Severity)+": "+d.Message)
				}
			}
			switch {
			case c.want == "" && len(got) > 0:
				t.Errorf("fleet diagnostic %q besides %v", got, diags)
			case c.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], c.want)):
				t.Errorf("got %q, want one starting %q; all: %v", got, c.want, diags)
			}
			if c.name == "allowEmpty" && diags.Errors() != 0 {
				t.Errorf("allowEmpty tree invalid: %v", diags)
			}
		})
	}
}

func TestDefaultsFromTags(t *testing.T) {
	tree, diags := Load(context.Background(), fstest.MapFS{"pxeops.yaml": {Data: []byte("allowEmpty: true\nomaha:\n  proxy: true\n")}}, nil)
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
	tree, diags := Load(context.Background(), fstest.MapFS{"pxeops.yaml": {Data: []byte("allowEmpty: true\nomaha:\n  mirror: https://mirror.example/{{ .Version }}/\n")}}, nil)
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
// An empty group or settings input leaves that file out, so trees without
// groups are tried too.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("profile: p\nselector:\n  mac: 52:54:00:00:00:01\n"), []byte("kernel: /assets/k\nargs: [\"{{ .MAC }}\"]\nconfig: {template: t}\n"), []byte("{{ .Metadata.x }}"), []byte(""))
	f.Add([]byte("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"), []byte("image: i\n"), []byte(""), []byte("omaha:\n  interval: 5s\n"))
	f.Add([]byte(strings.Repeat("[", 200)), []byte("---\n---\n"), []byte("{{ template \"x\" }}"), []byte("allowEmpty: yes\n"))
	f.Add([]byte("profile: p\nmetadata: {a: 1, a: 2}\n"), []byte("kernel: /assets/k\nargs:\n  - \"\\0\"\n"), []byte("#cloud-config\n{{ .Hostname }}"), []byte(""))
	f.Add([]byte(""), []byte("kernel: /assets/k\n"), []byte(""), []byte("allowEmpty: true\n"))
	f.Add([]byte(""), []byte(""), []byte(""), []byte("allowEmpty: [true]\n"))
	f.Add([]byte("profile: p\n"), []byte("kernel: /assets/k\nconfig: {template: t, type: butane}\n"), []byte("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: {{ .Hostname }}\n      mode: 644\n"), []byte(""))
	f.Add([]byte("profile: p\n"), []byte("kernel: /assets/k\nconfig: {template: t, type: ignition}\n"), []byte("ignition: {version: 3.4.0}\nstorage: {file: [{path: /x}]}\n"), []byte(""))
	f.Fuzz(func(t *testing.T, group, profile, tmpl, settings []byte) {
		fsys := fstest.MapFS{
			"profiles/p.yaml": {Data: profile},
			"templates/t":     {Data: tmpl},
		}
		if len(group) > 0 {
			fsys["groups/g.yaml"] = &fstest.MapFile{Data: group}
		}
		if len(settings) > 0 {
			fsys["pxeops.yaml"] = &fstest.MapFile{Data: settings}
		}
		_, diags := Load(context.Background(), fsys, nil)
		for _, d := range diags {
			switch {
			case d.File == "groups" || strings.HasPrefix(d.File, "groups/g.yaml"),
				strings.HasPrefix(d.File, "profiles/p.yaml"), strings.HasPrefix(d.File, "templates/t"),
				d.File == "pxeops.yaml":
			default:
				t.Fatalf("diagnostic names a file outside the tree: %v", d)
			}
			if d.Message == "" {
				t.Fatalf("empty message: %+v", d)
			}
		}
	})
}

// A load whose context ends stops, says so as a transient error (it was
// not the tree's fault), and leaves the cache as it was.
func TestLoadStopsWithContext(t *testing.T) {
	fsys := fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\nargs: [\"x={{ range 99990 }}{{ end }}{{ .MAC }}\"]\n")},
	}
	for i := range 200 {
		fsys[fmt.Sprintf("groups/g%d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, "profile: p\nselector: {mac: \"52:54:00:00:00:%02x\"}\n", i)}
	}
	cache := NewCache()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, diags := Load(ctx, fsys, cache)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s after its context ended", took)
	}
	if diags.Errors() != 1 || !diags.Transient() || !strings.Contains(diags[0].Message, "load abandoned") {
		t.Errorf("diags = %v", diags)
	}
	if cache.files != nil || cache.runs != nil {
		t.Error("an abandoned load filled the cache")
	}
}

// Whatever the file system, a file that says it is not a regular file is
// refused before it is read, as an error of the tree, not a retry.
func TestSpecialFilesAreRefused(t *testing.T) {
	_, diags := Load(context.Background(), fstest.MapFS{
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
