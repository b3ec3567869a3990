package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/podmantest"
)

const (
	labMAC   = "52:54:00:12:34:56" // the quickstart's lab-vm group
	strayMAC = "52:54:00:aa:bb:cc" // matched by no group
	marker   = "PXEOPS-QUICKSTART-BOOTED pxeops.group=lab-vm pxeops.mac=" + labMAC
)

func need(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and ports 67/69/4011")
	}
	for _, tool := range []string{"ip", "qemu-system-x86_64", "dnsmasq", "busybox", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed; .ci/run installs the e2e packages", tool)
		}
	}
	for _, f := range []string{ovmfCode, "/usr/lib/ipxe/qemu/pxe-e1000.rom", "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/snponly.efi"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing; .ci/run installs ovmf, ipxe and ipxe-qemu", f)
		}
	}
}

// lab is one set of namespaces, named after the test process so runs do
// not collide; everything is torn down at the end, also on failure.
type lab struct {
	t       *testing.T
	pfx     string
	dir     string
	pxeLogs string
}

func (l *lab) ns(name string) string { return l.pfx + name }

func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs a long-lived command inside a namespace until the test ends.
// `ip netns exec` execs the command, so the process is the command's.
func (l *lab) start(ns, logName string, args ...string) *os.Process {
	l.t.Helper()
	log, err := os.Create(filepath.Join(l.dir, logName))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(ns)}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	return cmd.Process
}

// newLab builds the lab; dnsmasqArgs go to the site's DHCP server after
// its own (a next-server, a boot file: what a site may set besides leases).
func newLab(t *testing.T, dnsmasqArgs ...string) *lab {
	l := &lab{t: t, pfx: fmt.Sprintf("p%d", os.Getpid()%100000), dir: t.TempDir()}
	t.Cleanup(func() {
		for _, ns := range []string{"lab", "dhcp", "pxe", "cli"} {
			exec.Command("ip", "netns", "del", l.ns(ns)).Run()
		}
	})
	for _, ns := range []string{"lab", "dhcp", "pxe", "cli"} {
		l.run("ip", "netns", "add", l.ns(ns))
		l.run("ip", "-n", l.ns(ns), "link", "set", "lo", "up")
	}
	lab := l.ns("lab")
	l.run("ip", "-n", lab, "link", "add", "br0", "type", "bridge")
	l.run("ip", "-n", lab, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.run("ip", "-n", lab, "link", "set", "br0", "up")
	for _, ns := range []string{"dhcp", "pxe", "cli"} {
		veth := "v" + l.pfx + ns[:1]
		l.run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", l.ns(ns))
		l.run("ip", "link", "set", veth, "netns", lab)
		l.run("ip", "-n", lab, "link", "set", veth, "master", "br0", "up")
		l.run("ip", "-n", l.ns(ns), "link", "set", "eth0", "up")
	}
	l.run("ip", "-n", l.ns("dhcp"), "addr", "add", "10.77.0.2/24", "dev", "eth0")
	l.run("ip", "-n", l.ns("pxe"), "addr", "add", "10.77.0.3/24", "dev", "eth0")
	l.run("ip", "-n", lab, "tuntap", "add", "dev", "tap0", "mode", "tap")
	l.run("ip", "-n", lab, "link", "set", "tap0", "master", "br0", "up")
	l.start("dhcp", "dnsmasq.log", append([]string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface=eth0", "--bind-interfaces", "--no-ping", "--log-dhcp", "--log-facility=-", "--pid-file=" + filepath.Join(l.dir, "dnsmasq.pid"),
		"--dhcp-range=10.77.0.10,10.77.0.250,255.255.255.0,1h"}, dnsmasqArgs...)...)
	return l
}

// fleet is the quickstart without its default group, so a MAC no group
// names is not served.
func fleet(t *testing.T) string {
	dir := t.TempDir()
	out, err := exec.Command("cp", "-r", "../../examples/quickstart/.", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("copy quickstart: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, "assets"))
	os.Remove(filepath.Join(dir, "groups", "default.yaml"))
	return dir
}

func buildPxeops(t *testing.T, dir string) string {
	bin := filepath.Join(dir, "pxeops")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/pxeops").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func buildAssets(t *testing.T, dir string) string { return buildAssetsFor(t, dir, "amd64") }

// buildAssetsFor builds the quickstart's payload for arch (ARCH of
// build-assets.sh) into dir/assets and returns that directory.
func buildAssetsFor(t *testing.T, dir, arch string) string {
	return buildAssetsWith(t, "../../examples/quickstart/build-assets.sh", dir, arch)
}

// buildAssetsWith is buildAssetsFor with another copy of build-assets.sh
// (one a test edited).
func buildAssetsWith(t *testing.T, script, dir, arch string) string {
	t.Helper()
	assets := filepath.Join(dir, "assets")
	cmd := exec.Command("bash", script, assets)
	cmd.Env = append(os.Environ(), "ARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ARCH=%s build-assets.sh: %v\n%s", arch, err, out)
	}
	return assets
}

func (l *lab) metrics() string {
	out, _ := exec.Command("ip", "netns", "exec", l.ns("pxe"), "curl", "-s", "http://127.0.0.1:8080/metrics").Output()
	return string(out)
}

// ready waits until pxeops serves a snapshot, or fails with its log.
func (l *lab) ready(log string, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(l.metrics(), "pxeops_snapshot_info") {
		if time.Now().After(deadline) {
			l.t.Fatalf("pxeops not ready after %s:\n%s", timeout, l.file(log))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *lab) file(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name))
	return string(b)
}

// counter reads one sample of a Prometheus text exposition; 0 if absent.
func counter(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestNetworkBoot(t *testing.T) {
	need(t)
	work := t.TempDir()
	bin, assets, tree := buildPxeops(t, work), buildAssets(t, work), fleet(t)
	l := newLab(t)
	pxeops := l.start("pxe", "pxeops.log", bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets, "--proxy-dhcp", "--interface", "eth0",
		"--http-addr", ":8080", "--log-level", "debug")
	l.ready("pxeops.log", 20*time.Second)

	t.Run("non-PXE client gets its lease from dnsmasq only", func(t *testing.T) {
		out := l.udhcpc(t, "02:00:00:00:00:01", "")
		if !strings.Contains(out, "obtained") || !strings.Contains(l.file("pxeops.log"), "not a PXE client") || strings.Contains(l.file("pxeops.log"), "mac=02:00:00:00:00:01 file=") {
			t.Errorf("udhcpc: %s\npxeops log:\n%s", out, tail(l.file("pxeops.log"), 2000))
		}
	})
	t.Run("PXE client no group matches gets no offer", func(t *testing.T) {
		out := l.udhcpc(t, strayMAC, "PXEClient:Arch:00000:UNDI:002001")
		log := l.file("pxeops.log")
		if !strings.Contains(out, "obtained") || !strings.Contains(log, "no group matches "+strayMAC) || strings.Contains(log, "mac="+strayMAC+" file=") {
			t.Errorf("udhcpc: %s\npxeops log:\n%s", out, tail(log, 2000))
		}
	})
	t.Run("BIOS with iPXE ROM", func(t *testing.T) {
		l.boot("bios", l.bios())
	})
	t.Run("BIOS with iPXE ROM, the site's offer first", func(t *testing.T) {
		// pxeops is frozen until dnsmasq has offered an address, then
		// answers the queued DISCOVER late: iPXE keeps listening for a
		// ProxyDHCP offer for 2 s after the first offer
		// (DHCP_DISC_PROXY_TIMEOUT_SEC), so the late one still wins.
		if err := pxeops.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer pxeops.Signal(syscall.SIGCONT)
		before := len(l.file("dnsmasq.log"))
		siteFirst := make(chan bool, 1)
		go func() {
			deadline := time.Now().Add(120 * time.Second)
			for time.Now().Before(deadline) {
				if log := l.file("dnsmasq.log"); len(log) > before && strings.Contains(log[before:], "DHCPOFFER(eth0)") && strings.Contains(log[before:], labMAC) {
					time.Sleep(time.Second)
					siteFirst <- true
					pxeops.Signal(syscall.SIGCONT)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			siteFirst <- false
			pxeops.Signal(syscall.SIGCONT)
		}()
		l.boot("bios-late-proxy", l.bios())
		if !<-siteFirst {
			t.Errorf("dnsmasq never offered %s an address while pxeops was stopped:\n%s", labMAC, tail(l.file("dnsmasq.log"), 2000))
		}
	})
	t.Run("UEFI with EDK2 PXE", func(t *testing.T) {
		l.boot("uefi", l.ovmf("uefi"))
		if log := l.file("pxeops.log"); !strings.Contains(log, "to=10.77.0.") || !strings.Contains(log, "tftp transfer\" file=snponly.efi") {
			t.Errorf("UEFI path did not go through port 4011 and TFTP:\n%s", tail(log, 3000))
		}
	})
	t.Run("UEFI HTTP boot", func(t *testing.T) {
		// OVMF's fw_cfg switches turn its PXE off, so the firmware goes
		// straight to HTTP boot: pxeops answers HTTPClient with the URL of
		// snponly.efi, fetched over HTTP; no TFTP at all.
		before := l.metrics()
		l.boot("uefi-http", l.ovmf("uefi-http",
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n", "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"))
		after := l.metrics()
		delta := func(series string) float64 { return counter(after, series) - counter(before, series) }
		if got := delta(`pxeops_http_requests_total{code="200",endpoint="ipxe-bin"}`); got < 1 {
			t.Errorf("snponly.efi was not fetched over HTTP (%v fetches):\n%s", got, tail(l.file("pxeops.log"), 3000))
		}
		if got := delta(`pxeops_tftp_bytes_total`); got != 0 {
			t.Errorf("HTTP boot used TFTP (%v bytes): PXE was not off", got)
		}
	})
}

// udhcpc runs busybox's DHCP client in the client namespace with the
// given MAC and vendor class, and returns its output.
func (l *lab) udhcpc(t *testing.T, mac, vendor string) string {
	t.Helper()
	l.run("ip", "-n", l.ns("cli"), "link", "set", "eth0", "down")
	l.run("ip", "-n", l.ns("cli"), "link", "set", "eth0", "address", mac)
	l.run("ip", "-n", l.ns("cli"), "link", "set", "eth0", "up")
	args := []string{"netns", "exec", l.ns("cli"), "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", "/bin/true"}
	if vendor != "" {
		args = append(args, "-V", vendor)
	}
	out, _ := exec.Command("ip", args...).CombinedOutput()
	time.Sleep(500 * time.Millisecond) // the log is flushed every 100 ms
	return string(out)
}

// TestNetworkBootFromContainer boots a BIOS machine from pxeops running
// in its image (packaging/build-image.sh) in the lab's server namespace,
// as its non-root user with CAP_NET_BIND_SERVICE alone.
func TestNetworkBootFromContainer(t *testing.T) {
	need(t)
	p := podmantest.New(t)
	const image = "localhost/pxeops:e2e"
	p.Build(t, "../..", image)
	work := t.TempDir()
	assets, tree := buildAssets(t, work), fleet(t)
	for _, d := range []string{assets, tree} { // the container's user reads them
		if out, err := exec.Command("chmod", "-R", "a+rX", d).CombinedOutput(); err != nil {
			t.Fatalf("chmod: %v %s", err, out)
		}
	}
	l := newLab(t)
	name := "pxeops-e2e-" + l.pfx
	// podman joins the namespace itself: under `ip netns exec` (which
	// mounts a sysfs of the namespace's own) runc finds no cgroups.
	cmd := p.Cmd("run", "--rm", "--name", name, "--network", "ns:/run/netns/"+l.ns("pxe"), "--cap-drop=all", "--cap-add=NET_BIND_SERVICE",
		"-v", tree+":/config:ro", "-v", assets+":/assets:ro", image,
		"serve", "--source", "/config", "--assets-dir", "/assets", "--proxy-dhcp", "--interface", "eth0", "--http-addr", ":8080", "--log-level", "debug")
	log, err := os.Create(filepath.Join(l.dir, "pxeops.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Cmd("rm", "-f", "-t", "1", name).Run()
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	l.ready("pxeops.log", 30*time.Second)
	l.boot("bios-container", l.bios())
}
