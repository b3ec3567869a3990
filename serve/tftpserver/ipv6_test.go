package tftpserver

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type remotesSeen struct {
	mu      sync.Mutex
	remotes []netip.Addr
}

func (tr *remotesSeen) TFTP(remote netip.Addr, file string, n int64, outcome string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.remotes = append(tr.remotes, remote)
}

// TFTP over IPv6: on an IPv6 address, and on the dual-stack wildcard
// (what --proxy-dhcp6 binds), where IPv4 clients arrive as mapped
// addresses the timeline must see unmapped, and curl's client is served
// at a bracketed URL too.
func TestIPv6(t *testing.T) {
	if ln, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		ln.Close()
	}
	dir := t.TempDir()
	want := bytes.Repeat([]byte("ipv6 "), 40_000)
	os.WriteFile(filepath.Join(dir, "snponly.efi"), want, 0o644)
	for _, c := range []struct {
		listen string
		from   []string // client hosts
	}{
		{"[::1]:0", []string{"::1"}},
		{"[::]:0", []string{"::1", "127.0.0.1"}},
	} {
		s, err := New(dir, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		tr := &remotesSeen{}
		s.Timeline = tr
		l, err := Listen(c.listen)
		if err != nil {
			t.Fatalf("Listen(%s): %v", c.listen, err)
		}
		go s.Serve(l)
		_, port, _ := net.SplitHostPort(l.LocalAddr().String())
		for _, host := range c.from {
			for _, blk := range []int{0, 1468} {
				got, size, err := fetch(t, net.JoinHostPort(host, port), "snponly.efi", blk)
				if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
					t.Errorf("%s from %s, blksize %d: %d bytes, tsize %d, %v", c.listen, host, blk, len(got), size, err)
				}
			}
		}
		wantN := 2 * len(c.from)
		if _, err := exec.LookPath("curl"); err == nil {
			url := "tftp://" + net.JoinHostPort("::1", port) + "/snponly.efi"
			if got, err := exec.Command("curl", "-sS", "--tftp-blksize", "1468", url).Output(); err != nil || !bytes.Equal(got, want) {
				t.Errorf("curl %s: %d bytes, %v", url, len(got), err)
			}
			wantN++
		}
		s.Shutdown()
		tr.mu.Lock()
		for i, r := range tr.remotes {
			if r.Is4In6() || r.Zone() != "" {
				t.Errorf("%s: transfer %d from %s: want an unmapped, unzoned address", c.listen, i, r)
			}
		}
		if len(tr.remotes) != wantN {
			t.Errorf("%s: %d transfers in the timeline, want %d", c.listen, len(tr.remotes), wantN)
		}
		tr.mu.Unlock()
	}
}
