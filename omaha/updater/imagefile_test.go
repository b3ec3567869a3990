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

var rollout = &RolloutEdit{
	Version: "4186.0.0", Share: 1000,
	Kernel: FileRef{URL: "/assets/cc/flatcar_production_pxe.vmlinuz", SHA256: strings.Repeat("c", 64)},
	Initrd: FileRef{URL: "/assets/dd/flatcar_production_pxe_image.cpio.gz", SHA256: strings.Repeat("d", 64)},
}

const pinned = `# pinned by hand
version: 4081.2.0 # pinned
kernel:
  url: /assets/aa/flatcar_production_pxe.vmlinuz
  sha256: ` + "aaaa" + `
initrd:
  - url: /assets/bb/flatcar_production_pxe_image.cpio.gz
    sha256: bbbb
`

// The rollout block is added, replaced and removed; nothing else moves.
func TestEditImageRollout(t *testing.T) {
	opened := pinned + `rollout:
  version: 4186.0.0
  share: 10%
  kernel:
    url: /assets/cc/flatcar_production_pxe.vmlinuz
    sha256: ` + strings.Repeat("c", 64) + `
  initrd:
    - url: /assets/dd/flatcar_production_pxe_image.cpio.gz
      sha256: ` + strings.Repeat("d", 64) + `
`
	commented := strings.Replace(opened, "rollout:\n", "rollout: # canaries first\n", 1) + "# the end\nupdate: omaha\n"
	moved := *rollout
	moved.Share = 5000
	for _, c := range []struct {
		name, in string
		e        ImageEdit
		want     string
	}{
		{"open beside the pin", pinned, ImageEdit{Rollout: rollout}, opened},
		{"open at the end of a file without a newline", strings.TrimSuffix(pinned, "\n"), ImageEdit{Rollout: rollout}, opened},
		{"open again: nothing to do", opened, ImageEdit{Rollout: rollout}, opened},
		{"next stage keeps the comments", commented, ImageEdit{Rollout: &moved}, strings.Replace(commented, "share: 10%", "share: 50%", 1)},
		{"remove keeps what follows", commented, ImageEdit{RemoveRollout: true}, pinned + "# the end\nupdate: omaha\n"},
		{"finish: pin moved, rollout removed", opened, ImageEdit{Version: rollout.Version, Kernel: rollout.Kernel, Initrd: rollout.Initrd, RemoveRollout: true},
			strings.NewReplacer("4081.2.0", "4186.0.0", "/aa/", "/cc/", "aaaa", strings.Repeat("c", 64), "/bb/", "/dd/", "bbbb", strings.Repeat("d", 64)).Replace(pinned)},
		{"remove what is not there", pinned, ImageEdit{RemoveRollout: true}, pinned},
	} {
		got, err := EditImage([]byte(c.in), c.e)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
	for _, c := range []struct{ name, in, want string }{
		{"flow root", "{version: 1, kernel: {url: x, sha256: y}, initrd: [{url: z, sha256: w}]}", "cannot add rollout to a {flow} mapping"},
		{"rollout as text", pinned + "rollout: soon\n", "rollout is not a mapping"},
		{"rollout without initrd", pinned + "rollout:\n  version: 1\n  share: 1%\n  kernel: {url: x, sha256: y}\n", "rollout.initrd is not a list"},
	} {
		if _, err := EditImage([]byte(c.in), ImageEdit{Rollout: rollout}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := EditImage([]byte("{version: 1, rollout: {version: 2}}"), ImageEdit{RemoveRollout: true}); err == nil || !strings.Contains(err.Error(), "{flow} mapping") {
		t.Errorf("remove from a flow mapping: %v", err)
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
	f.Add(pinned + "rollout: # canaries\n  version: 1\n  share: 10%\n  kernel: {url: x, sha256: y}\n  initrd:\n  - url: z\n    sha256: w\n# trailing\nupdate: omaha\n")
	f.Add(pinned + "rollout: {version: '2', share: 1%, kernel: {url: x, sha256: y}, initrd: [{url: z, sha256: w}]}\n")
	f.Add(strings.TrimSuffix(pinned, "\n"))
	f.Fuzz(func(t *testing.T, in string) {
		var valid map[string]any
		if yaml.Unmarshal([]byte(in), &valid) != nil {
			return // duplicate keys and the like: the schema refuses these first
		}
		// The input's length picks the edit: each of the updater's kinds.
		e := []ImageEdit{edit, {Rollout: rollout}, {RemoveRollout: true},
			{Version: edit.Version, Kernel: edit.Kernel, Initrd: edit.Initrd, RemoveRollout: true}}[len(in)%4]
		out, err := EditImage([]byte(in), e)
		if err != nil {
			return
		}
		type files struct {
			Version string
			Kernel  struct{ URL, SHA256 string }
			Initrd  []struct{ URL, SHA256 string }
		}
		// Only the parts the edit wrote are read as the schema would: the
		// rest may be anything YAML allows.
		var doc map[string]any
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("edited file does not parse: %v\n%s", err, out)
		}
		var img struct {
			files   `yaml:",inline"`
			Rollout *struct {
				files `yaml:",inline"`
				Share string
			}
		}
		if e.Version != "" {
			if err := yaml.Unmarshal(out, &img.files); err != nil {
				t.Fatalf("edited file does not read back: %v\n%s", err, out)
			}
		}
		if e.Rollout != nil || e.RemoveRollout {
			var r struct {
				Rollout *struct {
					files `yaml:",inline"`
					Share string
				}
			}
			if err := yaml.Unmarshal(out, &r); err != nil {
				t.Fatalf("rollout does not read back: %v\n%s", err, out)
			}
			img.Rollout = r.Rollout
		}
		same := func(f files, version string, k, i FileRef) bool {
			return f.Version == version && f.Kernel.URL == k.URL && f.Kernel.SHA256 == k.SHA256 &&
				len(f.Initrd) > 0 && f.Initrd[0].URL == i.URL && f.Initrd[0].SHA256 == i.SHA256
		}
		if e.Version != "" && !same(img.files, e.Version, e.Kernel, e.Initrd) {
			t.Fatalf("edited file reads back %+v\n%s", img, out)
		}
		if e.Rollout != nil && (img.Rollout == nil || img.Rollout.Share != e.Rollout.Share.String() || !same(img.Rollout.files, e.Rollout.Version, e.Rollout.Kernel, e.Rollout.Initrd)) {
			t.Fatalf("rollout reads back %+v\n%s", img.Rollout, out)
		}
		if e.RemoveRollout && img.Rollout != nil {
			t.Fatalf("rollout still there\n%s", out)
		}
	})
}
