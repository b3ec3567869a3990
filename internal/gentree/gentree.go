// Package gentree writes synthetic config repositories of a given size,
// for benchmarks and load tests: N groups, each selecting one machine by
// MAC, spread over P profiles with templated arguments and configs.
package gentree

import (
	"fmt"
	"os"
	"path/filepath"
)

// MAC returns the MAC address of generated machine i.
func MAC(i int) string {
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
}

// Files returns the tree's files by path.
func Files(groups, profiles int) map[string][]byte {
	files := map[string][]byte{
		"images/flatcar-stable.yaml": []byte(`os: flatcar
channel: stable
version: 4081.2.0
kernel:
  url: /assets/flatcar/4081.2.0/flatcar_production_pxe.vmlinuz
  sha256: 3a0e8d0a5a8c16e0a3bbf6f1b6a2e27cf1b0b3d1b1a3c4c0f4a5c2e6a9d1f0b2
initrd:
  - url: /assets/flatcar/4081.2.0/flatcar_production_pxe_image.cpio.gz
update: omaha
`),
		"templates/node.ign.yaml": []byte(`ignition:
  version: "3.4.0"
storage:
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        source: "data:,{{ .Metadata.hostname }}"
`),
	}
	for p := range profiles {
		files[fmt.Sprintf("profiles/p%03d.yaml", p)] = []byte(fmt.Sprintf(`description: generated profile %d
image: flatcar-stable
args:
  - flatcar.first_boot=yes
  - console=ttyS0,115200n8
  - "ignition.config.url={{ .ServerURL }}/ignition?mac={{ .MAC }}"
  - "pxeops.role=r%d"
config:
  template: node.ign.yaml
  type: ignition
`, p, p))
	}
	for g := range groups {
		files[fmt.Sprintf("groups/node%05d.yaml", g)] = []byte(fmt.Sprintf(`profile: p%03d
selector:
  mac: %s
metadata:
  hostname: node%05d
  rack: r%d
`, g%profiles, MAC(g), g, g%40))
	}
	return files
}

// Write writes the tree under dir.
func Write(dir string, groups, profiles int) error {
	for name, data := range Files(groups, profiles) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
