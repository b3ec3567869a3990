package daemon

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/pxeops/pxeops/serve/tftpserver"
)

var (
	testIP6  = netip.MustParseAddr("fd77::3")
	testMAC6 = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0x00, 0x03}
)

// lo has neither a global IPv6 address nor a MAC: tests name them.
func stub6(string) (netip.Addr, net.HardwareAddr, error) { return testIP6, testMAC6, nil }

// ProxyDHCP6 turns TFTP on, on the dual-stack wildcard beside IPv4
// ProxyDHCP or at the IPv6 address alone, and gives IPv6 clients the
// server URL at the IPv6 address unless it names a host or is IPv6.
func TestValidateProxyDHCP6(t *testing.T) {
	for _, c := range []struct {
		name            string
		v4              bool
		serverURL       string
		tftp, url, url6 string
	}{
		{"beside IPv4", true, "", ":69", "http://127.0.0.1:8081", "http://[fd77::3]:8081"},
		{"alone (lo has IPv4 too)", false, "", ":69", "http://127.0.0.1:8081", "http://[fd77::3]:8081"},
		{"IPv6 server URL", false, "http://[fd77::9]:8080", ":69", "http://[fd77::9]:8080", "http://[fd77::9]:8080"},
		{"named server URL", true, "http://pxe.test:8080/x", ":69", "http://pxe.test:8080/x", "http://pxe.test:8080/x"},
		{"IPv4 server URL", true, "http://10.0.0.3", ":69", "http://10.0.0.3", "http://[fd77::3]:8081"},
	} {
		cfg := Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8081", ProxyDHCP: c.v4, ProxyDHCP6: true, Interface: "lo", ServerURL: c.serverURL,
			IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"}
		cfg.proxy6.lookup = stub6
		must(t, cfg.Validate())
		if cfg.TFTPAddr != c.tftp || cfg.ServerURL != c.url || cfg.proxy6.serverURL != c.url6 {
			t.Errorf("%s: tftp %q, server url %q, IPv6 %q; want %q %q %q", c.name, cfg.TFTPAddr, cfg.ServerURL, cfg.proxy6.serverURL, c.tftp, c.url, c.url6)
		}
	}
	// An interface without IPv4: TFTP at its IPv6 address alone.
	v6only := Config{ProxyDHCP6: true, proxy6: proxy6{ip: testIP6}}
	if got := v6only.tftpHost("69"); got != "[fd77::3]:69" {
		t.Errorf("IPv6-only interface: TFTP on %q", got)
	}
	// lo is not an interface ProxyDHCP6 can run on; the error names it.
	cfg := Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", ProxyDHCP6: true, Interface: "lo", IPXEDir: ipxeDir(t), EFIBinary: "snponly.efi"}
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "Interface lo: ") {
		t.Errorf("ProxyDHCP6 on lo: %v", err)
	}
	cfg = Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", ProxyDHCP6: true}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "required for ProxyDHCP6") {
		t.Errorf("ProxyDHCP6 without an interface: %v", err)
	}
}

func udp6Conn(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func opt6(code uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// The daemon wired: EDK2's port-4011 Request gets its boot file over
// the running server, counted in pxeops_dhcp6_packets_total and seen in
// the machine's timeline; a socket that dies ends Run naming it.
func TestProxyDHCP6Runs(t *testing.T) {
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	cfg := Config{Source: "fleet", Tree: fleet(t), ProxyDHCP6: true, Interface: "lo",
		DHCP6Conn: udp6Conn(t), BootServer6Conn: udp6Conn(t), TFTPListener: tl,
		IPXEDir: ipxeDir(t), EFIBinary: "snponly.efi"}
	cfg.proxy6.lookup = stub6
	r := start(t, cfg)

	client := udp6Conn(t)
	duidLL := []byte{0, 3, 0, 1, 0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	serverID := append([]byte{0, 3, 0, 1}, testMAC6...)
	class := "PXEClient:Arch:00007:UNDI:003000"
	pkt := []byte{3, 1, 2, 3}
	pkt = append(pkt, opt6(2, serverID)...)
	pkt = append(pkt, opt6(1, duidLL)...)
	pkt = append(pkt, opt6(61, []byte{0, 7})...)
	pkt = append(pkt, opt6(16, append([]byte{0, 0, 1, 0x57, 0, byte(len(class))}, class...))...)
	if _, err := client.WriteToUDP(pkt, cfg.BootServer6Conn.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := client.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no Reply from the boot server port: %v; log:\n%s", err, r.logs)
	}
	msg, err := dhcpv6.MessageFromBytes(buf[:n])
	if err != nil || msg.MessageType != dhcpv6.MessageTypeReply || msg.Options.BootFileURL() != "tftp://[fd77::3]/snponly.efi" {
		t.Fatalf("got %v (%v)", msg, err)
	}
	r.until(t, 5*time.Second, "the reply counted", func() bool {
		_, m := r.get("/metrics")
		return strings.Contains(m, `pxeops_dhcp6_packets_total{port="4011",result="reply"} 1`)
	})
	if code, body := r.get("/v1/machines/52:54:00:00:00:01"); code != 200 || !strings.Contains(body, "tftp://[fd77::3]/snponly.efi") {
		t.Errorf("timeline: %d %s", code, body)
	}
	stops(t, r, "proxydhcp6:547", func() { cfg.DHCP6Conn.Close() })
}
