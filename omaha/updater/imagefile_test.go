package updater

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var edit = ImageEdit{
	Version: "4152.2.0",
	Kernel:  FileRef{URL: "/assets/aa/flatcar_production_pxe.vmlinuz", SHA256: strings.Repeat("a", 64)},
	Initrd:  FileRef{URL: "/assets/bb/flatcar_production_pxe_image.cpio.gz", SHA256: strings.Repeat("b", 64)},
}

func TestEditImageKeepsEverythingElse(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"quoted styles kept, missing sha256 added", `os: flatcar   # the OS
channel: 'stable'
version: '4081.2.0'
kernel:
    url: "https://old/vmlinuz"   # old
initrd:
  - url: https://old/initrd
    sha256: "` + strings.Repeat("0", 64) + `"
  - url: /assets/oem.cpio.gz
update: omaha`, `os: flatcar   # the OS
channel: 'stable'
version: '4152.2.0'
kernel:
    url: "/assets/aa/flatcar_production_pxe.vmlinuz"   # old
    sha256: ` + strings.Repeat("a", 64) + `
initrd:
  - url: /assets/bb/flatcar_production_pxe_image.cpio.gz
    sha256: "` + strings.Repeat("b", 64) + `"
  - url: /assets/oem.cpio.gz
update: omaha`},
		{"unicode before a value, CRLF-free, already current kernel", "# ünïcode ✓\nversion: 4081.2.0\nkernel: {url: /assets/aa/flatcar_production_pxe.vmlinuz, sha256: " + strings.Repeat("a", 64) + "}\ninitrd:\n- {url: x, sha256: y}\n",
			"# ünïcode ✓\nversion: 4152.2.0\nkernel: {url: /assets/aa/flatcar_production_pxe.vmlinuz, sha256: " + strings.Repeat("a", 64) + "}\ninitrd:\n- {url: /assets/bb/flatcar_production_pxe_image.cpio.gz, sha256: " + strings.Repeat("b", 64) + "}\n"},
	} {
		got, err := EditImage([]byte(c.in), edit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
}

func TestEditImageRefusesWhatItCannotRewrite(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"flow mapping without sha256", "version: 1\nkernel: {url: x}\ninitrd: [{url: y, sha256: z}]\n", "2:9: cannot add sha256 to a {flow} mapping"},
		{"block scalar", "version: |\n  1.0\nkernel:\n  url: x\n  sha256: y\ninitrd:\n  - url: z\n    sha256: w\n", "1:10: version is written in a form"},
		{"kernel as text", "version: 1\nkernel: x\ninitrd: [y]\n", "kernel is not a mapping"},
		{"no initrd", "version: 1\nkernel: {url: x, sha256: y}\n", "initrd is not a list"},
		{"not a mapping", "- a\n", "not a mapping"},
	} {
		if _, err := EditImage([]byte(c.in), edit); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestYAMLScalarQuotesWhatPlainWouldMisread(t *testing.T) {
	for in, want := range map[string]string{"4152.2.0": "4152.2.0", "1.0": `"1.0"`, "true": `"true"`, "a: b": `"a: b"`, "#x": `"#x"`, "/assets/a b": `"/assets/a b"`} {
		if got := yamlScalar(in, 0); got != want {
			t.Errorf("yamlScalar(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzEditImage: whatever valid YAML the file holds, an edit either fails
// or yields YAML that reads back with exactly the new values.
func FuzzEditImage(f *testing.F) {
	f.Add("version: 1.0.0 # c\nkernel:\n  url: 'x'\ninitrd:\n  - url: \"y\"\n    sha256: z\n")
	f.Add("version: 1\nkernel: {url: x, sha256: y}\ninitrd: [{url: y, sha256: z}]\n")
	f.Fuzz(func(t *testing.T, in string) {
		var valid map[string]any
		if yaml.Unmarshal([]byte(in), &valid) != nil {
			return // duplicate keys and the like: the schema refuses these first
		}
		out, err := EditImage([]byte(in), edit)
		if err != nil {
			return
		}
		var img struct {
			Version string
			Kernel  struct{ URL, SHA256 string }
			Initrd  []struct{ URL, SHA256 string }
		}
		if err := yaml.Unmarshal(out, &img); err != nil {
			t.Fatalf("edited file does not parse: %v\n%s", err, out)
		}
		if img.Version != edit.Version || img.Kernel.URL != edit.Kernel.URL || img.Kernel.SHA256 != edit.Kernel.SHA256 ||
			img.Initrd[0].URL != edit.Initrd.URL || img.Initrd[0].SHA256 != edit.Initrd.SHA256 {
			t.Fatalf("edited file reads back %+v\n%s", img, out)
		}
	})
}
