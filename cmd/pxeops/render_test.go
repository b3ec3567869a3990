package main

import (
	"strings"
	"testing"
)

// A machine whose loader is grub is shown the GRUB config where others
// see the iPXE script; the first line says which it runs.
func TestRenderShowsTheLoader(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"profiles/p.yaml":    "kernel: /assets/k\ninitrd: [/assets/i.gz]\nargs: [console=ttyS0, \"host={{ .Hostname }}\"]\n",
		"groups/secure.yaml": "profile: p\nloader: grub\nselector: {mac: \"52:54:00:00:00:01\"}\n",
		"groups/other.yaml":  "profile: p\nselector: {mac: \"52:54:00:00:00:02\"}\n",
	})
	code, out, errOut := runCLI(t, "render", "--mac", "52:54:00:00:00:01", "--hostname", "n1", "--server-url", "http://pxe.test", dir)
	want := "first:    shim → GRUB (TFTP)\n\n--- GRUB config (TFTP) ---\n" +
		"# pxeops: group secure, profile p\n" +
		"echo 'pxeops: booting secure (p)'\n" +
		"linux '/assets/k' 'console=ttyS0' 'host=n1'\n" +
		"initrd '/assets/i.gz'\n" +
		"boot\n\n--- config (/config, ) ---\n"
	if code != exitOK || !strings.Contains(out, want) || strings.Contains(out, "#!ipxe") {
		t.Errorf("grub machine: exit %d, want\n%s\nin\n%s%s", code, want, out, errOut)
	}
	code, out, errOut = runCLI(t, "render", "--mac", "52:54:00:00:00:02", dir)
	if code != exitOK || !strings.Contains(out, "first:    iPXE\n\n--- iPXE script (/ipxe) ---\n#!ipxe\n") || strings.Contains(out, "GRUB") {
		t.Errorf("ipxe machine: exit %d\n%s%s", code, out, errOut)
	}
}
