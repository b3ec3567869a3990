package neighbour

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on a thread moved into network namespace ns. The
// thread stays locked, so Go discards it afterwards instead of reusing
// it in the wrong namespace. Sockets keep the namespace they were made in.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The kernel's own table, in two namespaces joined by a veth pair: after
// a TCP connection from the client, the server's table maps the
// client's address to the client's MAC; addresses without a neighbour
// (loopback, nobody) are not found.
func TestKernelTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	pfx := fmt.Sprintf("nb%d", os.Getpid()%100000)
	srv, cli := pfx+"s", pfx+"c"
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", srv).Run()
		exec.Command("ip", "netns", "del", cli).Run()
	})
	run(t, "ip", "netns", "add", srv)
	run(t, "ip", "netns", "add", cli)
	run(t, "ip", "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
	run(t, "ip", "-n", cli, "link", "set", "eth0", "address", "02:00:00:00:00:0c")
	run(t, "ip", "-n", srv, "addr", "add", "10.78.0.1/24", "dev", "eth0")
	run(t, "ip", "-n", cli, "addr", "add", "10.78.0.2/24", "dev", "eth0")
	for _, ns := range []string{srv, cli} {
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	var ln net.Listener
	inNetns(t, srv, func() {
		var err error
		if ln, err = net.Listen("tcp", "10.78.0.1:0"); err != nil {
			t.Error(err)
		}
	})
	if ln == nil {
		return
	}
	defer ln.Close()
	var before bool
	tab := New()
	inNetns(t, srv, func() { _, before = tab.MAC(netip.MustParseAddr("10.78.0.2")) })
	if before {
		t.Fatal("the client is in the table before it sent anything")
	}
	inNetns(t, cli, func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		c.Close()
	})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort(c.RemoteAddr().String()).Addr()
	c.Close()
	inNetns(t, srv, func() {
		if mac, ok := tab.MAC(peer); !ok || mac != "02:00:00:00:00:0c" {
			t.Errorf("the connected client %s: %q %v, want 02:00:00:00:00:0c", peer, mac, ok)
		}
		for _, ip := range []string{"127.0.0.1", "10.78.0.3", "10.78.0.1"} {
			if mac, ok := tab.MAC(netip.MustParseAddr(ip)); ok {
				t.Errorf("%s: found %q, want no neighbour", ip, mac)
			}
		}
		if err := tab.Err(); err != nil {
			t.Errorf("reading the table: %v", err)
		}
	})
}
