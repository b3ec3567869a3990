package daemon

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

const discoveredBranch = "pxeops/discovered"

// pxeDiscover sends what PXE firmware broadcasts first, a DHCPDISCOVER
// from mac, to the ProxyDHCP socket at to. No group matches mac, so no
// answer comes; the timeline records the client as unmatched.
func pxeDiscover(t *testing.T, to net.Addr, mac string) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	defer c.Close()
	hw, err := net.ParseMAC(mac)
	must(t, err)
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7})))
	must(t, err)
	if _, err := c.WriteTo(req.ToBytes(), to); err != nil {
		t.Fatal(err)
	}
}

// bareGit runs git on the remote's bare repository; ok false when git
// failed (a ref or file that is not there).
func bareGit(remote *gittest.Remote, args ...string) (string, bool) {
	out, err := exec.Command("git", append([]string{"--git-dir", remote.Bare}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// discoveryServe is a serve of url (the git source in state) with
// ProxyDHCP on loopback and discovery passes every 100 ms.
func discoveryServe(t *testing.T, url, tokenFile, state string) (*running, Config) {
	t.Helper()
	auth, err := source.Auth(url, source.AuthOptions{TokenFile: tokenFile})
	must(t, err)
	g, err := source.NewGit(source.GitOptions{URL: url, Ref: "main", StateDir: state, Poll: time.Hour, Auth: auth})
	must(t, err)
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	cfg := Config{Source: url, Tree: g, StateDir: state, ProxyDHCP: true, Interface: "lo",
		DHCPConn: udpConn(t), BootServerConn: udpConn(t), TFTPListener: tl,
		IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi",
		// As serve wires it: the updater's repository, over the source's clone.
		OpenUpdateRepo: func(ctx context.Context) (*propose.Repo, error) {
			return propose.Open(ctx, propose.Options{Location: url, Ref: "main", Clone: g.Clone(), Auth: auth})
		},
		discoveryFirst: 50 * time.Millisecond, discoveryEvery: 100 * time.Millisecond}
	return start(t, cfg), cfg
}

func (r *running) discovery(t *testing.T) DiscoveryStatus {
	t.Helper()
	code, body := r.get("/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status = %d %v: %s", code, err, body)
	}
	return st.Discovery
}

// discovery.serve against a real remote behind token auth: a PXE client
// no group matches (a real DHCPDISCOVER on the ProxyDHCP socket) is
// proposed on the discovery branch, which passes check; main is never
// touched; the same client seen again runs no pass, and a pass with
// nothing new (a restarted serve) adds no commit. A push the remote
// refuses is logged and kept in /status while serving goes on, and the
// next pass retries it. The token never shows.
func TestDiscoveryServe(t *testing.T) {
	remote := gittest.New(t)
	head := remote.Commit("fleet", map[string]string{
		"pxeops.yaml":          "discovery:\n  serve: true\n  profile: worker\n",
		"profiles/worker.yaml": "kernel: /assets/linux/vmlinuz\n",
		"groups/node1.yaml":    "profile: worker\nselector:\n  mac: 52:54:00:00:00:01\n",
	})
	const token = "discovery-push-token-4711"
	url := remote.HTTP(token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	state := t.TempDir()
	const mac2, file2 = "52:54:00:00:00:02", "groups/discovered-52-54-00-00-00-02.yaml"
	const mac3, file3 = "52:54:00:00:00:03", "groups/discovered-52-54-00-00-00-03.yaml"

	r, cfg := discoveryServe(t, url, tokenFile, state)
	if st := r.discovery(t); st.LastPass != nil && st.Commit != "" {
		t.Fatalf("a proposal before any client: %+v", st)
	}
	pxeDiscover(t, cfg.DHCPConn.LocalAddr(), mac2)
	r.until(t, 20*time.Second, "the remote's "+discoveredBranch+" holds "+file2, func() bool {
		_, ok := bareGit(remote, "cat-file", "-e", discoveredBranch+":"+file2)
		return ok
	})
	tip, _ := bareGit(remote, "rev-parse", discoveredBranch)
	if n, _ := bareGit(remote, "rev-list", "--count", "main.."+discoveredBranch); n != "1" {
		t.Errorf("%s commits on %s, want 1", n, discoveredBranch)
	}
	if got, _ := bareGit(remote, "rev-parse", "main"); got != head {
		t.Errorf("main moved to %s, was %s", got, head)
	}
	if diff, _ := bareGit(remote, "diff", "--name-status", "main", discoveredBranch); diff != "A\t"+file2 {
		t.Errorf("the branch changes:\n%s", diff)
	}
	var st DiscoveryStatus
	r.until(t, 5*time.Second, "/status shows the pass", func() bool { st = r.discovery(t); return st.Commit == tip })
	if st.State != "on" || st.Branch != discoveredBranch || st.Proposed != 1 || st.Error != "" || st.LastPass == nil {
		t.Errorf("/status discovery %+v", st)
	}
	checkBranch(t, url, tokenFile, map[string]string{mac2: "discovered-52-54-00-00-00-02"})

	// Seen again: the set is the same, so no pass runs at all.
	pxeDiscover(t, cfg.DHCPConn.LocalAddr(), mac2)
	r.until(t, 5*time.Second, "the client counted twice", func() bool {
		_, body := r.get("/v1/discovered")
		return strings.Contains(body, `"seen": 2`)
	})
	time.Sleep(500 * time.Millisecond) // five ticks
	if again := r.discovery(t); !again.LastPass.Equal(*st.LastPass) {
		t.Errorf("a pass ran with nothing new: %+v, was %+v", again, st)
	}
	r.stop()
	if err := r.runError(t); err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
	logs := r.logs.String()

	// A restarted serve (the same clone) sees the client again: its first
	// pass has nothing new and adds no commit.
	r, cfg = discoveryServe(t, url, tokenFile, state)
	pxeDiscover(t, cfg.DHCPConn.LocalAddr(), mac2)
	r.until(t, 20*time.Second, "a pass after the restart", func() bool { st = r.discovery(t); return st.LastPass != nil })
	if st.Error != "" || st.Commit != tip || st.Proposed != 1 {
		t.Errorf("/status after the idle pass %+v, want commit %s", st, tip)
	}
	if got, _ := bareGit(remote, "rev-parse", discoveredBranch); got != tip {
		t.Errorf("a pass with nothing new moved %s to %s, was %s", discoveredBranch, got, tip)
	}

	// The remote refuses the push: the error is kept and logged with the
	// branch, serving goes on, and once the remote takes it again the next
	// pass proposes both machines.
	hook := filepath.Join(remote.Bare, "hooks", "pre-receive")
	must(t, os.WriteFile(hook, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	pxeDiscover(t, cfg.DHCPConn.LocalAddr(), mac3)
	r.until(t, 20*time.Second, "/status keeps the push's error", func() bool { st = r.discovery(t); return st.Error != "" })
	if !strings.Contains(st.Error, "push "+discoveredBranch) || st.Commit != tip {
		t.Errorf("/status after a refused push %+v", st)
	}
	if code, body := r.get("/readyz"); code != 200 {
		t.Errorf("/readyz after a failed pass = %d %s", code, body)
	}
	if code, body := r.get("/ipxe?mac=52-54-00-00-00-01"); code != 200 || !strings.HasPrefix(body, "#!ipxe") {
		t.Errorf("node1's script after a failed pass = %d %q", code, body)
	}
	r.until(t, 5*time.Second, "the failure logged with its branch", func() bool {
		return strings.Contains(r.logs.String(), "msg=\"discovery pass failed; serving goes on, the next pass retries\" branch="+discoveredBranch+" err=")
	})
	must(t, os.Remove(hook))
	r.until(t, 20*time.Second, "the retry pushed both", func() bool { st = r.discovery(t); return st.Error == "" && st.Proposed == 2 })
	if got, _ := bareGit(remote, "rev-parse", discoveredBranch); got != st.Commit || got == tip {
		t.Errorf("%s is %s after the retry, /status says %s (was %s)", discoveredBranch, got, st.Commit, tip)
	}
	checkBranch(t, url, tokenFile, map[string]string{mac2: "discovered-52-54-00-00-00-02", mac3: "discovered-52-54-00-00-00-03"})
	if diff, _ := bareGit(remote, "diff", "--name-status", "main", discoveredBranch); diff != "A\t"+file2+"\nA\t"+file3 {
		t.Errorf("the branch changes:\n%s", diff)
	}
	_, status := r.get("/status")
	if all := logs + r.logs.String() + status; strings.Contains(all, token) {
		t.Errorf("the token shows in the log or /status:\n%s", all)
	}
}

// checkBranch loads the discovery branch as pxeops check --ref does: no
// errors, and each MAC boots its proposed group's profile.
func checkBranch(t *testing.T, url, tokenFile string, want map[string]string) {
	t.Helper()
	a, err := source.Auth(url, source.AuthOptions{TokenFile: tokenFile})
	must(t, err)
	g, err := source.NewGit(source.GitOptions{URL: url, Ref: discoveredBranch, StateDir: t.TempDir(), Auth: a})
	must(t, err)
	rev, err := g.Once(context.Background())
	must(t, err)
	snap, diags := render.Load(context.Background(), rev.FS, render.Options{ServerURL: schema.SampleServerURL})
	if snap == nil || diags.Errors() > 0 || diags.Warnings() > 0 {
		t.Fatalf("%s does not pass check: %v", discoveredBranch, diags)
	}
	for mac, group := range want {
		if g := snap.Lookup(&schema.Machine{MAC: mac, Arch: "x86_64"}); g == nil || g.ID != group || g.Profile.ID != "worker" {
			t.Errorf("%s on %s gets %v, want group %s", mac, discoveredBranch, g, group)
		}
	}
}

// With a directory source discovery does not run, whatever the tree
// says: pxeops never writes to it. serve logs that once, and /status
// says why.
func TestDiscoveryServeOffForADirectory(t *testing.T) {
	tree := fleetOf(t, map[string]string{
		"pxeops.yaml":     "discovery:\n  serve: true\n",
		"profiles/p.yaml": "kernel: /assets/k\n",
		"groups/g.yaml":   "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	})
	r := start(t, Config{Source: "fleet", Tree: tree, OpenUpdateRepo: func(context.Context) (*propose.Repo, error) {
		t.Error("a directory source's repository was opened")
		return nil, os.ErrInvalid
	}, discoveryFirst: 10 * time.Millisecond, discoveryEvery: 20 * time.Millisecond})
	var st DiscoveryStatus
	r.until(t, 5*time.Second, "/status says discovery is off", func() bool {
		st = r.discovery(t)
		return strings.HasPrefix(st.State, "off: the source is a directory")
	})
	time.Sleep(200 * time.Millisecond) // ten ticks
	if n := strings.Count(r.logs.String(), "discovery.serve is set but discovery does not run in serve"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, r.logs)
	}
	if st = r.discovery(t); st.LastPass != nil || st.Branch != discoveredBranch {
		t.Errorf("/status discovery %+v", st)
	}
}
