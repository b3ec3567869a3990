package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// curlFrom asks pxeops (10.77.0.3:8080) for target from the client
// namespace and returns the status code and body.
func (l *lab) curlFrom(t *testing.T, target string) (string, string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.ns("cli"), "curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", target).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v %s", target, err, out)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	return s[i+1:], s[:i]
}

// TestAccessOnTheBootNetwork: with --access machine, an attacker on the
// same bridge asking for the lab machine's script and config by its MAC
// is refused, and so is the config URL the machine's own script gave it
// (replayed from the attacker's address, then from the machine's address
// taken over after it powered off), while the real machine boots and its
// initramfs fetches and prints its own config.
func TestAccessOnTheBootNetwork(t *testing.T) {
	need(t)
	work := t.TempDir()
	bin, assets, tree := buildPxeops(t, work), buildAssets(t, work), fleet(t)
	profile := filepath.Join(tree, "profiles", "linux.yaml")
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "  - \"pxeops.mac={{ .MAC }}\"\n",
		"  - \"pxeops.mac={{ .MAC }}\"\n  - \"pxeops.config={{ .ServerURL }}/config?mac={{ .MAC }}\"\n", 1))
	if err := os.WriteFile(profile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLab(t)
	l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets, "--proxy-dhcp", "--interface", "eth0",
		"--http-addr", ":8080", "--access", "machine", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)
	// The attacker: another host on the bridge, its own MAC and address.
	cli := l.ns("cli")
	l.run("ip", "-n", cli, "link", "set", "eth0", "address", "02:00:00:00:0a:77")
	l.run("ip", "-n", cli, "addr", "add", "10.77.0.5/24", "dev", "eth0")

	const server = "http://10.77.0.3:8080"
	for _, target := range []string{"/ipxe?mac=" + labMAC, "/config?mac=" + labMAC, "/metadata?mac=" + labMAC, "/pixiecore/v1/boot/" + labMAC} {
		if code, body := l.curlFrom(t, server+target); code != "403" || !strings.Contains(body, "other_mac") {
			t.Errorf("attacker GET %s = %s %q, want 403 other_mac", target, code, body)
		}
	}

	l.boot("bios-access", l.bios())
	serial := l.file("bios-access.serial")
	want := "PXEOPS-CONFIG: echo \"hello, lab machine (lab-vm, " + labMAC + ")\""
	if !strings.Contains(serial, want) {
		t.Fatalf("the machine did not print its config (%q)\nserial tail:\n%s\npxeops log tail:\n%s", want, tail(serial, 3000), tail(l.file("pxeops.log"), 3000))
	}
	m := regexp.MustCompile(`pxeops\.config=(\S+)`).FindStringSubmatch(serial)
	addr := regexp.MustCompile(`PXEOPS-ADDRESS (10\.77\.0\.\d+)`).FindStringSubmatch(serial)
	if m == nil || addr == nil || !strings.Contains(m[1], "pxeops.token=") {
		t.Fatalf("no tokened config URL or address in the serial log:\n%s", tail(serial, 3000))
	}
	configURL := m[1]
	t.Logf("the machine at %s fetched %s", addr[1], configURL)
	if code, body := l.curlFrom(t, configURL); code != "403" || !strings.Contains(body, "other_mac") {
		t.Errorf("the machine's config URL replayed by the attacker = %s %q, want 403", code, body)
	}
	// The machine is off: the attacker takes its address and replays.
	l.run("ip", "-n", cli, "addr", "flush", "dev", "eth0")
	l.run("ip", "-n", cli, "addr", "add", addr[1]+"/24", "dev", "eth0")
	if code, body := l.curlFrom(t, configURL); code != "403" || !strings.Contains(body, "other_mac") {
		t.Errorf("the config URL replayed from the machine's own address = %s %q, want 403", code, body)
	}
	metrics := l.metrics()
	if n := counter(metrics, `pxeops_access_decisions_total{reason="other_mac",result="refused"}`); n != 6 {
		t.Errorf("%v refusals counted, want 6", n)
	}
	if n := counter(metrics, `pxeops_access_decisions_total{reason="neighbour",result="served"}`); n < 2 {
		t.Errorf("%v answers to the machine by its neighbour entry, want its script and config", n)
	}
}
