package e2e

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIPv6 boots OVMF by IPv6: dnsmasq gives addresses by router
// advertisements and DHCPv6 (and knows nothing of PXE), OVMF's IPv4 PXE is
// off, and pxeops --proxy-dhcp6 says where to boot from.
//
//   - IPv6 PXE: EDK2's Solicit gets our address-less Advertise, its
//     Request to port 4011 our Reply, and snponly.efi comes by TFTP over
//     IPv6. iPXE (Debian's, of 2019) then has no way to take a boot file
//     from a DHCPv6 proxy (in stateful DHCPv6 it only takes the server
//     that gives it an address), so this run has --proxy-dhcp on too and
//     iPXE finds its script over IPv4, as on a dual-stack network.
//   - IPv6 HTTP boot: PXE off altogether and pxeops with --proxy-dhcp6
//     alone (else IPv4 HTTP boot, tried first, would win): the firmware
//     fetches snponly.efi from http://[fd77::3]:8080/ipxe-bin/ and iPXE
//     starts; its script is out of reach for the reason above.
//
// With PXEOPS_CAPTURE_DIR set, the firmware's Solicits, its port-4011
// Request and iPXE's Solicit are written there (serve/proxydhcp6/testdata
// holds them, for its replay test).
func TestIPv6(t *testing.T) {
	need(t)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("no IPv6 in this kernel")
	}
	work := t.TempDir()
	bin, assets, tree := buildPxeops(t, work), buildAssets(t, work), fleet(t)
	l := newLab(t, "--enable-ra", "--dhcp-range=fd77::10,fd77::250,64,1h")
	// The server's address is fixed (no SLAAC address beside it), the
	// site server's appears after dnsmasq started, which it notices.
	l.run("ip", "netns", "exec", l.ns("pxe"), "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0")
	l.run("ip", "-n", l.ns("pxe"), "addr", "add", "fd77::3/64", "dev", "eth0", "nodad")
	l.run("ip", "-n", l.ns("dhcp"), "addr", "add", "fd77::2/64", "dev", "eth0", "nodad")
	tcpdump := l.start("pxe", "dhcp6.log", "tcpdump", "-i", "eth0", "-U", "-n", "-w", filepath.Join(l.dir, "dhcp6.pcap"), "udp port 547 or udp port 4011")

	serve := func(log string, flags ...string) *os.Process {
		args := append([]string{bin, "serve", "--source", tree, "--state-dir", t.TempDir(), "--assets-dir", assets, "--interface", "eth0",
			"--http-addr", ":8080", "--log-level", "debug"}, flags...)
		p := l.start("pxe", log, args...)
		l.ready(log, 20*time.Second)
		return p
	}
	stop := func(p *os.Process) {
		p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for p.Signal(syscall.Signal(0)) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ipv4PXEOff := []string{"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"}

	t.Run("UEFI PXE over IPv6", func(t *testing.T) {
		p := serve("pxeops.log", "--proxy-dhcp", "--proxy-dhcp6")
		defer stop(p)
		l.boot("uefi-pxe6", l.ovmf("uefi-pxe6", ipv4PXEOff...))
		log := l.file("pxeops.log")
		for _, want := range []string{
			`msg="dhcp6: advertise" mac=` + labMAC + ` file=tftp://[fd77::3]/snponly.efi`,
			`msg="dhcp6: reply" mac=` + labMAC + ` file=tftp://[fd77::3]/snponly.efi to=[fd77::`,
			`msg="tftp transfer" file=snponly.efi remote=fd77::`,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("pxeops log lacks %q:\n%s", want, tail(log, 4000))
			}
		}
		m := l.metrics()
		if counter(m, `pxeops_dhcp6_packets_total{port="4011",result="reply"}`) < 1 || counter(m, `pxeops_dhcp6_packets_total{port="547",result="advertise"}`) < 1 {
			t.Errorf("dhcp6 metrics:\n%s", grep(m, "pxeops_dhcp6"))
		}
		if dl := l.file("dnsmasq.log"); !strings.Contains(dl, "DHCPREPLY(eth0) fd77::") {
			t.Errorf("dnsmasq gave no IPv6 address:\n%s", tail(dl, 2000))
		}
	})
	t.Run("UEFI HTTP boot over IPv6", func(t *testing.T) {
		p := serve("pxeops-http6.log", "--proxy-dhcp6")
		defer stop(p)
		before := l.metrics()
		serial, took := l.bootUntil("uefi-http6", 240*time.Second, regexp.MustCompile(`iPXE initialising devices|iPXE 1\.`),
			l.ovmf("uefi-http6", append(ipv4PXEOff, "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")...))
		after := l.metrics()
		log := l.file("pxeops-http6.log")
		if got := counter(after, `pxeops_http_requests_total{code="200",endpoint="ipxe-bin"}`) - counter(before, `pxeops_http_requests_total{code="200",endpoint="ipxe-bin"}`); got < 1 {
			t.Errorf("snponly.efi not fetched over HTTP (%v) after %s\nserial:\n%s\npxeops log:\n%s", got, took, tail(serial, 3000), tail(log, 3000))
		}
		if !strings.Contains(log, `msg="dhcp6: advertise" mac=`+labMAC+` file=http://[fd77::3]:8080/ipxe-bin/snponly.efi`) {
			t.Errorf("no HTTP-boot Advertise:\n%s", tail(log, 3000))
		}
		if !regexp.MustCompile(`iPXE initialising devices|iPXE 1\.`).MatchString(serial) {
			t.Errorf("iPXE did not start after %s:\n%s", took, tail(serial, 3000))
		}
	})

	tcpdump.Signal(syscall.SIGINT)
	time.Sleep(time.Second)
	pkts := udpPayloads(t, l.file("dhcp6.pcap"))
	found := map[string][]byte{}
	for _, p := range pkts {
		switch {
		case p.dst == 547 && len(p.data) > 0 && p.data[0] == 1 && bytes.Contains(p.data, []byte("PXEClient")) && found["ovmf-solicit"] == nil:
			found["ovmf-solicit"] = p.data
		case p.dst == 547 && len(p.data) > 0 && p.data[0] == 1 && bytes.Contains(p.data, []byte("HTTPClient")) && found["ovmf-http-solicit"] == nil:
			found["ovmf-http-solicit"] = p.data
		case p.dst == 547 && len(p.data) > 0 && p.data[0] == 1 && bytes.Contains(p.data, []byte("iPXE")) && found["ipxe-solicit"] == nil:
			found["ipxe-solicit"] = p.data
		case p.dst == 4011 && len(p.data) > 0 && p.data[0] == 3 && found["ovmf-request-4011"] == nil:
			found["ovmf-request-4011"] = p.data
		}
	}
	for _, name := range []string{"ovmf-solicit", "ovmf-request-4011", "ovmf-http-solicit", "ipxe-solicit"} {
		if found[name] == nil {
			t.Errorf("no %s captured among %d packets", name, len(pkts))
			continue
		}
		if dir := os.Getenv("PXEOPS_CAPTURE_DIR"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name+".bin"), found[name], 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}

type udpPacket struct {
	dst  uint16
	data []byte
}

// udpPayloads reads the UDP payloads of IPv6 packets from a pcap file of
// Ethernet frames (what tcpdump -w writes), without extension headers.
func udpPayloads(t *testing.T, pcap string) []udpPacket {
	t.Helper()
	b := []byte(pcap)
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("not a little-endian pcap file (%d bytes)", len(b))
	}
	var out []udpPacket
	for b = b[24:]; len(b) >= 16; {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+n {
			break
		}
		frame := b[16 : 16+n]
		b = b[16+n:]
		if len(frame) < 14+40+8 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd || frame[14+6] != 17 {
			continue
		}
		udp := frame[14+40:]
		out = append(out, udpPacket{dst: binary.BigEndian.Uint16(udp[2:]), data: udp[8:]})
	}
	return out
}

func grep(s, sub string) string {
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}
