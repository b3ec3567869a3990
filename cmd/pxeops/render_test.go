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
	code, out, errOut := runCLI(t, "render", "--mac", "52:54:00:00:00:01", "--hostname", "n1", "--arch", "x86_64", "--server-url", "http://pxe.test", dir)
	want := "first:    shim → GRUB (UEFI; a BIOS machine gets iPXE)\n\n--- GRUB config (TFTP grub/52:54:00:00:00:01-x86_64.cfg, /grub) ---\n" +
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

// During a rollout, render says which version the machine boots and
// why: its bucket against the share (buckets computed with sha256sum,
// as README shows), and the script it shows boots that version.
func TestRenderExplainsTheRolloutSide(t *testing.T) {
	image := func(share string) string {
		return "os: flatcar\nversion: 4081.2.0\nkernel: {url: /assets/4081.2.0/vmlinuz}\ninitrd: [{url: /assets/4081.2.0/initrd}]\n" +
			"rollout:\n  version: 4116.0.0\n  share: " + share + "\n  kernel: {url: /assets/4116.0.0/vmlinuz}\n  initrd: [{url: /assets/4116.0.0/initrd}]\n"
	}
	tree := func(share string) string {
		return writeTree(t, map[string]string{
			"images/flatcar-stable.yaml": image(share),
			"profiles/p.yaml":            "image: flatcar-stable\n",
			"groups/g.yaml":              "profile: p\n",
		})
	}
	for _, c := range []struct{ share, mac, want, kernel string }{
		{"10%", "52:54:00:12:34:0f", "image:    flatcar-stable: rollout 4116.0.0 at 10% beside 4081.2.0: this machine's bucket 565 of 10000 is under 1000 → 4116.0.0 (the rollout)\n", "4116.0.0"},
		{"10%", "52:54:00:12:34:03", "image:    flatcar-stable: rollout 4116.0.0 at 10% beside 4081.2.0: this machine's bucket 3794 of 10000 is not under 1000 → 4081.2.0 (pinned)\n", "4081.2.0"},
		{"50%", "52:54:00:12:34:03", "this machine's bucket 3794 of 10000 is under 5000 → 4116.0.0 (the rollout)\n", "4116.0.0"},
		{"100%", "52:54:00:12:34:01", "at 100% beside 4081.2.0: every machine → 4116.0.0 (the rollout)\n", "4116.0.0"},
		{"10%", "", "no --mac, so no bucket → 4081.2.0 (pinned)\n", "4081.2.0"},
	} {
		args := []string{"render", "--server-url", "http://pxe.test"}
		if c.mac != "" {
			args = append(args, "--mac", c.mac)
		} else {
			args = append(args, "--hostname", "n1")
		}
		code, out, errOut := runCLI(t, append(args, tree(c.share))...)
		if code != exitOK || !strings.Contains(out, c.want) || !strings.Contains(out, "kernel http://pxe.test/assets/"+c.kernel+"/vmlinuz ") {
			t.Errorf("%s at %s: exit %d, want %q and kernel %s in\n%s%s", c.mac, c.share, code, c.want, c.kernel, out, errOut)
		}
	}
	dir := writeTree(t, map[string]string{"profiles/p.yaml": "kernel: /assets/k\n", "groups/g.yaml": "profile: p\n"})
	if _, out, _ := runCLI(t, "render", "--mac", "52:54:00:12:34:01", dir); strings.Contains(out, "image:") {
		t.Errorf("a profile without an image shows an image line:\n%s", out)
	}
}
