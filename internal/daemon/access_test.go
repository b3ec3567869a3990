package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/pxeops/pxeops/internal/logtest"
	"github.com/pxeops/pxeops/serve/access"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source"
)

// from is an HTTP client whose connections come from ip.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	code, body, _ := getWith(t, c, url)
	return code, body
}

// bootServerRequest sends what UEFI firmware or iPXE sends to port 4011
// after the ProxyDHCP offer, from sender, claiming ciaddr, and reports
// whether it was answered.
func bootServerRequest(t *testing.T, to net.Addr, sender, ciaddr, mac string) bool {
	return bootServerReply(t, to, sender, ciaddr, mac) != nil
}

// bootServerReply is bootServerRequest's answer, nil when none came.
func bootServerReply(t *testing.T, to net.Addr, sender, ciaddr, mac string) *dhcpv4.DHCPv4 {
	t.Helper()
	c, err := net.ListenPacket("udp4", sender+":0")
	must(t, err)
	defer c.Close()
	hw, _ := net.ParseMAC(mac)
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.ParseIP(ciaddr)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7})))
	must(t, err)
	c.WriteTo(req.ToBytes(), to)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return nil
	}
	reply, err := dhcpv4.FromBytes(buf[:n])
	must(t, err)
	return reply
}

// A relayed network on loopback: the machine at 127.0.0.2 and an
// attacker at 127.0.0.3 both reach pxeops through no shared link (the
// kernel has no neighbour entry for either), so the machine is known by
// its port-4011 exchange and the token in its script. The attacker gets
// neither the script nor, replaying the machine's config URL, the config,
// whose secret only the machine gets.
func TestRoutedMachineGetsOnlyItsOwnConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "profiles/p.yaml"), "kernel: /assets/k\nargs: [\"pxeops.config={{ .ServerURL }}/config?mac={{ .MAC }}\"]\nconfig: {template: c.sh}\n")
	writeFile(t, filepath.Join(dir, "templates/c.sh"), "echo the config of {{ .MAC }}: {{ secret \"token\" }}\n")
	writeFile(t, filepath.Join(dir, "groups/g.yaml"), "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")
	tree, err := source.NewDir(dir, source.DirOptions{Poll: time.Hour})
	must(t, err)
	t.Cleanup(func() { tree.Close() })
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	boot := udpConn(t)
	// The default mode (auto) checks this group because its config reads
	// a secret.
	cfg := Config{Source: "fleet", Tree: withToken(t, tree), ProxyDHCP: true, Interface: "lo",
		DHCPConn: udpConn(t), BootServerConn: boot, TFTPListener: tl,
		IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"}
	r := start(t, cfg)
	machine, attacker := from("127.0.0.2"), from("127.0.0.3")
	const mac = "52:54:00:00:00:01"
	script := r.url + "/ipxe?mac=" + mac

	if code, body := fetch(t, machine, script); code != 403 || !strings.Contains(body, "not_bound") {
		t.Errorf("script before any boot-server exchange: %d %q", code, body)
	}
	// The attacker claims the MAC at the machine's address: not learned,
	// since it does not send from there.
	if !bootServerRequest(t, boot.LocalAddr(), "127.0.0.3", "127.0.0.2", mac) {
		t.Fatal("the boot server did not answer")
	}
	if code, _ := fetch(t, machine, script); code != 403 {
		t.Errorf("a 4011 request from elsewhere vouched for the machine's address: %d", code)
	}
	if !bootServerRequest(t, boot.LocalAddr(), "127.0.0.2", "127.0.0.2", mac) {
		t.Fatal("the boot server did not answer the machine")
	}
	code, body := fetch(t, machine, script)
	m := regexp.MustCompile(`pxeops\.config=(\S+)`).FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(m[1], "&pxeops.token=") {
		t.Fatalf("the machine's script: %d %q", code, body)
	}
	configURL := m[1]
	if code, body := fetch(t, attacker, script); code != 403 || !strings.Contains(body, "not_bound") {
		t.Errorf("the attacker's script: %d %q", code, body)
	}
	if code, body := fetch(t, machine, configURL); code != 200 || body != "echo the config of "+mac+": s3cr3t-join-value\n" {
		t.Errorf("the machine's config: %d %q", code, body)
	}
	if code, body := fetch(t, attacker, configURL); code != 403 || !strings.Contains(body, "bad_token") {
		t.Errorf("the machine's config URL replayed by the attacker: %d %q", code, body)
	}
	if code, body := fetch(t, machine, r.url+"/config?mac="+mac); code != 403 || !strings.Contains(body, "no_token") {
		t.Errorf("the config without the token: %d %q", code, body)
	}
	_, metrics := r.get("/metrics")
	for _, series := range []string{`pxeops_access_decisions_total{reason="bad_token",result="refused"} 1`, `pxeops_access_decisions_total{reason="token",result="served"} 1`,
		`pxeops_access_decisions_total{reason="binding",result="served"} 1`} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if _, status := r.get("/status"); !strings.Contains(status, `"access": "auto"`) {
		t.Errorf("/status does not show the mode")
	}
}

// secretFleet serves profile p, whose config reads the secret "token",
// to the group files given, with the secret's value in a directory.
func secretFleet(t *testing.T, groups map[string]string) source.Source {
	t.Helper()
	files := map[string]string{
		"profiles/p.yaml":   "kernel: /assets/k\nconfig: {template: c.sh}\n",
		"templates/c.sh":    "echo join {{ secret \"token\" }}\n",
		"profiles/q.yaml":   "kernel: /assets/k\n",
		"groups/plain.yaml": "profile: q\nselector: {mac: \"52:54:00:00:00:09\"}\n",
	}
	for name, body := range groups {
		files[name] = body
	}
	return withToken(t, fleetOf(t, files))
}

// withToken gives tree the secret "token", s3cr3t-join-value, from a
// secrets directory.
func withToken(t *testing.T, tree source.Source) source.Source {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "s3cr3t-join-value")
	secrets, err := source.NewSecretsDir(dir, source.DirOptions{Poll: time.Hour})
	must(t, err)
	t.Cleanup(func() { secrets.Close() })
	return source.WithSecrets(tree, secrets)
}

// The access rule and the secrets meet: under the default (auto) a
// config that reads a secret goes only to its machine, which loopback
// (no neighbour entry, no boot-server exchange) is not, while a plain
// profile is served as before; and a tree whose secret the mode would
// give away is refused like an invalid one, at its group file.
func TestSecretsOnlyToTheirMachine(t *testing.T) {
	mac := "52:54:00:00:00:01"
	r := start(t, Config{Source: "fleet", Tree: secretFleet(t, map[string]string{
		"groups/g.yaml": "profile: p\nselector: {mac: \"" + mac + "\"}\n",
	})})
	if code, body := r.get("/config?mac=" + mac); code != http.StatusForbidden || strings.Contains(body, "s3cr3t") {
		t.Errorf("a secret config to someone else: %d %q", code, body)
	}
	if code, body := r.get("/ipxe?mac=52:54:00:00:00:09"); code != http.StatusOK {
		t.Errorf("a plain profile under auto: %d %q", code, body)
	}

	for _, c := range []struct {
		name   string
		mode   access.Mode
		groups map[string]string
		file   string
	}{
		{"open gives every secret away", access.Open, map[string]string{"groups/g.yaml": "profile: p\nselector: {mac: \"" + mac + "\"}\n"}, "groups/g.yaml"},
		{"a uuid is a claim", access.Auto, map[string]string{"groups/u.yaml": "profile: p\nselector: {uuid: \"8f4c0a2e-6a53-4b1e-9b7a-0d1c2e3f4a5b\"}\n"}, "groups/u.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			cfg := Config{Source: "fleet", Tree: secretFleet(t, c.groups), Access: c.mode, HTTPListener: ln}
			logs := &logtest.Buffer{}
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- cfg.Run(ctx) }()
			defer func() { cancel(); <-done }()
			url := "http://" + ln.Addr().String()
			deadline := time.Now().Add(10 * time.Second)
			var status string
			for time.Now().Before(deadline) {
				if code, body := fetch(t, from("127.0.0.1"), url+"/status"); code == 200 && strings.Contains(body, c.file) {
					status = body
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if status == "" {
				t.Fatalf("/status never named %s; log:\n%s", c.file, logs)
			}
			if strings.Contains(status, "s3cr3t") || strings.Contains(logs.String(), "s3cr3t") {
				t.Errorf("/status or the log shows the secret:\n%s\n%s", status, logs)
			}
			if code, body := fetch(t, from("127.0.0.1"), url+"/config?mac="+mac); code == 200 || strings.Contains(body, "s3cr3t") {
				t.Errorf("the refused tree served a config: %d %q", code, body)
			}
			if code, _ := fetch(t, from("127.0.0.1"), url+"/readyz"); code == 200 {
				t.Errorf("ready with no valid tree")
			}
		})
	}
}
