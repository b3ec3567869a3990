package proxydhcp6

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/pxeops/pxeops/render"
)

// The requests here are built byte by byte after what EDK2's
// PxeBcBuildDhcp6Options / HttpBootBuildDhcp6Options and Dhcp6Dxe's
// Dhcp6SendSolicitMsg put in a packet (client ID, elapsed time, IA_NA,
// then ORO, UNDI, architecture and vendor class), and iPXE's dhcpv6_tx
// (client ID, ORO, user class, elapsed time; no vendor class, no
// architecture): cases the lab's firmware sends and some it does not.

var serverMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0x00, 0x03}

var cfg = Config{
	ServerIP:  netip.MustParseAddr("fd77::3"),
	ServerMAC: serverMAC,
	ServerURL: "http://[fd77::3]:8080",
	EFIFile:   "snponly.efi",
}

func snapshot(t testing.TB, groups map[string]string) *render.Snapshot {
	t.Helper()
	fsys := fstest.MapFS{"profiles/p.yaml": {Data: []byte("kernel: /assets/k\n")}}
	for name, body := range groups {
		fsys["groups/"+name+".yaml"] = &fstest.MapFile{Data: []byte(body)}
	}
	snap, diags := render.Load(context.Background(), fsys, render.Options{ServerURL: cfg.ServerURL})
	if snap == nil {
		t.Fatal(diags)
	}
	return snap
}

var known = map[string]string{"vm": "profile: p\nselector: {mac: \"52:54:00:12:34:56\"}\n"}

// The client's addresses: its EUI-64 link-local one (MAC 52:54:00:12:34:56)
// and the one the site's DHCPv6 server gave it.
var (
	linkLocal = netip.MustParseAddr("fe80::5054:ff:fe12:3456")
	station   = netip.MustParseAddr("fd77::10")
	privacyLL = netip.MustParseAddr("fe80::1c2d:3e4f:5a6b:7c8d")
)

func opt(code uint16, data ...[]byte) []byte {
	body := bytes.Join(data, nil)
	b := binary.BigEndian.AppendUint16(nil, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

var (
	smbiosGUID = []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	duidUUID   = append(u16(4), smbiosGUID...)
	duidLL     = append(u16(3), 0, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
	duidLLT    = append(append(u16(1), 0, 1, 0x2a, 0x00, 0x00, 0x01), 0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
	ourDUID    = append(u16(3), 0, 1, 0x52, 0x54, 0x00, 0xaa, 0x00, 0x03)
	otherDUID  = append(u16(3), 0, 1, 0x52, 0x54, 0x00, 0xbb, 0x00, 0x01)
)

// edk2 is a Solicit (or, with serverID, a Request) as EDK2 sends it;
// class is its vendor class data, arch option 61.
func edk2(mt byte, duid []byte, class string, arch uint16, serverID []byte) []byte {
	b := []byte{mt, 0x12, 0x34, 0x56}
	b = append(b, opt(1, duid)...)
	if serverID != nil {
		b = append(b, opt(2, serverID)...)
	}
	b = append(b, opt(8, u16(0))...)
	if mt == 1 {
		b = append(b, opt(3, u32(0x12345678), u32(0), u32(0))...)
	}
	b = append(b, opt(6, u16(59), u16(60), u16(23), u16(16))...)
	b = append(b, opt(62, []byte{1, 3, 0})...)
	b = append(b, opt(61, u16(arch))...)
	b = append(b, opt(16, u32(343), u16(uint16(len(class))), []byte(class))...)
	return b
}

// edk2BootServer is the Request EDK2 sends to port 4011 after a proxy's
// Advertise (PxeBcRequestBootService): our server ID first, then the
// Request it sent the site's server less IA_NA and server ID.
func edk2BootServer(serverID []byte) []byte {
	b := []byte{3, 0x12, 0x34, 0x56}
	b = append(b, opt(2, serverID)...)
	b = append(b, opt(1, duidUUID)...)
	b = append(b, opt(8, u16(150))...)
	b = append(b, opt(6, u16(59), u16(60), u16(23), u16(16))...)
	b = append(b, opt(62, []byte{1, 3, 0})...)
	b = append(b, opt(61, u16(7))...)
	b = append(b, opt(16, u32(343), u16(32), []byte("PXEClient:Arch:00007:UNDI:003000"))...)
	return b
}

// ipxe is iPXE's Solicit (1) or Information-request (11).
func ipxe(mt byte) []byte {
	b := []byte{mt, 0xab, 0xcd, 0xef}
	b = append(b, opt(1, duidUUID)...)
	if mt == 1 {
		b = append(b, opt(3, u32(0x1b2c3d4e), u32(0), u32(0))...)
	}
	b = append(b, opt(6, u16(23), u16(24), u16(59))...)
	b = append(b, opt(15, u16(4), []byte("iPXE"))...)
	b = append(b, opt(8, u16(0))...)
	return b
}

// relayed wraps msg in a Relay-forward from a relay on fd00:1::1, with
// an interface ID and, when mac is set, RFC 6939's option 79.
func relayed(msg []byte, mac net.HardwareAddr) []byte {
	b := []byte{12, 0}
	b = append(b, netip.MustParseAddr("fd00:1::1").AsSlice()...)
	b = append(b, privacyLL.AsSlice()...)
	b = append(b, opt(18, []byte("eth7"))...)
	if mac != nil {
		b = append(b, opt(79, u16(1), mac)...)
	}
	return append(b, opt(9, msg)...)
}

const (
	pxeX64  = "PXEClient:Arch:00007:UNDI:003000"
	httpX64 = "HTTPClient:Arch:00016:UNDI:003000"
)

func TestAnswers(t *testing.T) {
	snap := snapshot(t, known)
	arm := cfg
	arm.ARM64File = "snponly-arm64.efi"
	for _, c := range []struct {
		name    string
		pkt     []byte
		from    netip.Addr
		port    Port
		known   net.HardwareAddr
		cfg     *Config
		mt      dhcpv6.MessageType
		file    string
		vendor  string
		dropped string
	}{
		{name: "EDK2 PXE Solicit (DUID-UUID, EUI-64 source)", pkt: edk2(1, duidUUID, pxeX64, 7, nil), from: linkLocal, port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "EDK2 Request to the boot server", pkt: edk2BootServer(ourDUID), from: station, port: BootServerPort, known: net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
			mt: dhcpv6.MessageTypeReply, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "EDK2 Request to the boot server, MAC not learned", pkt: edk2BootServer(ourDUID), from: station, port: BootServerPort, dropped: "MAC is unknown"},
		{name: "EDK2 Request to another boot server", pkt: edk2BootServer(otherDUID), from: station, port: BootServerPort, dropped: "another server"},
		{name: "EDK2 Request on 547 for the site's server", pkt: edk2(3, duidUUID, pxeX64, 7, otherDUID), from: linkLocal, port: ServerPort, dropped: "another server"},
		{name: "EDK2 Request on 547 for us", pkt: edk2(3, duidLL, pxeX64, 7, ourDUID), from: linkLocal, port: ServerPort,
			mt: dhcpv6.MessageTypeReply, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "EDK2 HTTP boot Solicit", pkt: edk2(1, duidUUID, httpX64, 16, nil), from: linkLocal, port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "http://[fd77::3]:8080/ipxe-bin/snponly.efi", vendor: "HTTPClient"},
		{name: "DUID-LL, privacy link-local", pkt: edk2(1, duidLL, pxeX64, 7, nil), from: privacyLL, port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "DUID-LLT", pkt: edk2(1, duidLLT, pxeX64, 7, nil), from: privacyLL, port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "iPXE Information-request", pkt: ipxe(11), from: linkLocal, port: ServerPort,
			mt: dhcpv6.MessageTypeReply, file: "http://[fd77::3]:8080/boot.ipxe", vendor: "PXEClient"},
		{name: "iPXE Solicit", pkt: ipxe(1), from: linkLocal, port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "http://[fd77::3]:8080/boot.ipxe", vendor: "PXEClient"},
		{name: "arm64 PXE", pkt: edk2(1, duidUUID, "PXEClient:Arch:00011:UNDI:003000", 11, nil), from: linkLocal, port: ServerPort, cfg: &arm,
			mt: dhcpv6.MessageTypeAdvertise, file: "tftp://[fd77::3]/snponly-arm64.efi", vendor: "PXEClient"},
		{name: "arm64 HTTP", pkt: edk2(1, duidUUID, "HTTPClient:Arch:00019:UNDI:003000", 19, nil), from: linkLocal, port: ServerPort, cfg: &arm,
			mt: dhcpv6.MessageTypeAdvertise, file: "http://[fd77::3]:8080/ipxe-bin/snponly-arm64.efi", vendor: "HTTPClient"},
		{name: "arm64 without a binary", pkt: edk2(1, duidUUID, "PXEClient:Arch:00011:UNDI:003000", 11, nil), from: linkLocal, port: ServerPort, dropped: "no arm64 iPXE binary"},
		{name: "ia32 UEFI", pkt: edk2(1, duidUUID, "PXEClient:Arch:00006:UNDI:003000", 6, nil), from: linkLocal, port: ServerPort, dropped: "not served"},
		{name: "BIOS arch", pkt: edk2(1, duidUUID, "PXEClient:Arch:00000:UNDI:002001", 0, nil), from: linkLocal, port: ServerPort, dropped: "not served"},
		{name: "HTTPClient with a PXE arch", pkt: edk2(1, duidUUID, "HTTPClient:Arch:00007:UNDI:003000", 7, nil), from: linkLocal, port: ServerPort, dropped: "vendor class"},
		{name: "no vendor class (dhclient)", pkt: append([]byte{1, 9, 9, 9}, append(opt(1, duidLLT), opt(8, u16(0))...)...), from: linkLocal, port: ServerPort, dropped: "not a PXE client"},
		{name: "no option 61", pkt: append([]byte{1, 9, 9, 9}, append(opt(1, duidLL), opt(16, u32(343), u16(9), []byte("PXEClient"))...)...), from: linkLocal, port: ServerPort, dropped: "no client architecture"},
		{name: "Solicit on 4011", pkt: edk2(1, duidUUID, pxeX64, 7, nil), from: station, port: BootServerPort, dropped: "not for a boot server"},
		{name: "Solicit with a server ID", pkt: edk2(1, duidUUID, pxeX64, 7, ourDUID), from: linkLocal, port: ServerPort, dropped: "server ID"},
		{name: "Renew", pkt: edk2(5, duidUUID, pxeX64, 7, ourDUID), from: linkLocal, port: ServerPort, dropped: "not for a boot server"},
		{name: "Relayed, option 79", pkt: relayed(edk2(1, duidUUID, pxeX64, 7, nil), net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}), from: netip.MustParseAddr("fd00:1::1"), port: ServerPort,
			mt: dhcpv6.MessageTypeAdvertise, file: "tftp://[fd77::3]/snponly.efi", vendor: "PXEClient"},
		{name: "Relayed, no MAC anywhere", pkt: relayed(edk2(1, duidUUID, pxeX64, 7, nil), nil), from: netip.MustParseAddr("fd00:1::1"), port: ServerPort, dropped: "MAC is unknown"},
		{name: "Relayed on 4011", pkt: relayed(edk2BootServer(ourDUID), net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}), from: station, port: BootServerPort, dropped: "relayed"},
		{name: "Relay-reply", pkt: append([]byte{13}, relayed(edk2(1, duidUUID, pxeX64, 7, nil), nil)[1:]...), from: netip.MustParseAddr("fd00:1::1"), port: ServerPort, dropped: "not a Relay-forward"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg, err := dhcpv6.FromBytes(c.pkt)
			if err != nil {
				t.Fatalf("the test's packet does not parse: %v", err)
			}
			conf := cfg
			if c.cfg != nil {
				conf = *c.cfg
			}
			reply, why := Answer(Request{Msg: msg, From: c.from, Port: c.port, Known: c.known}, snap, conf)
			if c.dropped != "" {
				if reply != nil || !strings.Contains(why.Reason, c.dropped) {
					t.Fatalf("answered %v (%q); want no answer because %q", reply, why, c.dropped)
				}
				return
			}
			if reply == nil {
				t.Fatalf("no answer: %s", why)
			}
			if reply.File != c.file {
				t.Errorf("file %q, want %q", reply.File, c.file)
			}
			if got := reply.Client.MAC.String(); got != "52:54:00:12:34:56" {
				t.Errorf("client MAC %q", got)
			}
			checkWire(t, c.pkt, reply.Msg.ToBytes(), c.mt, c.file, c.vendor)
		})
	}
}

// checkWire walks reply's bytes with a parser of its own: every option's
// length adds up, the transaction and client ID are the request's, the
// server ID is ours, option 59 is followed by the vendor class (EDK2's
// HTTP boot reads it as a C string), and nothing gives an address or a
// status.
func checkWire(t *testing.T, req, reply []byte, mt dhcpv6.MessageType, file, vendor string) {
	t.Helper()
	checkWireAs(t, req, reply, mt, file, vendor, ourDUID)
}

// checkWireAs is checkWire for a server whose DUID is serverID.
func checkWireAs(t *testing.T, req, reply []byte, mt dhcpv6.MessageType, file, vendor string, serverID []byte) {
	t.Helper()
	innerReq, _ := innermost(t, req)
	inner, relayOpts := innermost(t, reply)
	if len(relayOpts) > 0 || req[0] == 12 {
		if reply[0] != 13 {
			t.Fatalf("relayed request answered with message type %d, not a Relay-reply", reply[0])
		}
		if !bytes.Equal(relayOpts[18], []byte("eth7")) {
			t.Errorf("interface ID not echoed: %q", relayOpts[18])
		}
		if !bytes.Equal(reply[2:34], req[2:34]) {
			t.Errorf("link and peer address not copied")
		}
	}
	if dhcpv6.MessageType(inner[0]) != mt || !bytes.Equal(inner[1:4], innerReq[1:4]) {
		t.Fatalf("header %x, want type %s and transaction %x", inner[:4], mt, innerReq[1:4])
	}
	want, _ := options(t, innerReq[4:])
	got, order := options(t, inner[4:])
	if !bytes.Equal(got[1], want[1]) {
		t.Errorf("client ID %x, want the request's %x", got[1], want[1])
	}
	if !bytes.Equal(got[2], serverID) {
		t.Errorf("server ID %x, want DUID-LL %x", got[2], serverID)
	}
	if string(got[59]) != file {
		t.Errorf("option 59 %q, want %q", got[59], file)
	}
	wantVC := append(append(u32(343), u16(uint16(len(vendor)))...), vendor...)
	if !bytes.Equal(got[16], wantVC) {
		t.Errorf("vendor class %x, want %x", got[16], wantVC)
	}
	for i, code := range order {
		if code == 59 && (i+1 == len(order) || order[i+1]>>8 != 0) {
			t.Errorf("option 59 is not followed by an option whose first byte is 0: %v", order)
		}
	}
	for _, code := range []uint16{3, 4, 5, 7, 13, 14, 25} { // IA_NA, IA_TA, IAADDR, preference, status, rapid commit, IA_PD
		if _, ok := got[code]; ok {
			t.Errorf("reply carries option %d", code)
		}
	}
}

// innermost returns the client message inside any Relay messages, and
// the options of the innermost relay.
func innermost(t *testing.T, b []byte) ([]byte, map[uint16][]byte) {
	t.Helper()
	var relay map[uint16][]byte
	for len(b) > 0 && (b[0] == 12 || b[0] == 13) {
		if len(b) < 34 {
			t.Fatalf("relay header of %d bytes", len(b))
		}
		relay, _ = options(t, b[34:])
		b = relay[9]
	}
	if len(b) < 4 {
		t.Fatalf("message of %d bytes", len(b))
	}
	return b, relay
}

func options(t *testing.T, b []byte) (map[uint16][]byte, []uint16) {
	t.Helper()
	m := map[uint16][]byte{}
	var order []uint16
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d stray bytes after the options", len(b))
		}
		code, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+n {
			t.Fatalf("option %d claims %d bytes, %d left", code, n, len(b)-4)
		}
		if _, dup := m[code]; dup {
			t.Errorf("option %d twice", code)
		}
		m[code] = b[4 : 4+n]
		order = append(order, code)
		b = b[4+n:]
	}
	return m, order
}

// The snapshot decides: a machine no group could match gets nothing, a
// client whose MAC is unknown only a MAC-free group, a GRUB machine
// nothing, and nobody anything before a first snapshot.
func TestSnapshotDecides(t *testing.T) {
	ask := func(pkt []byte, from netip.Addr, snap *render.Snapshot) (*Reply, Refusal) {
		msg, err := dhcpv6.FromBytes(pkt)
		if err != nil {
			t.Fatal(err)
		}
		return Answer(Request{Msg: msg, From: from, Port: ServerPort}, snap, cfg)
	}
	sol := edk2(1, duidUUID, pxeX64, 7, nil)
	other := netip.MustParseAddr("fe80::5054:ff:fe99:9999")
	if reply, why := ask(sol, other, snapshot(t, known)); reply != nil || !why.NoGroup || why.Client.MAC.String() != "52:54:00:99:99:99" {
		t.Errorf("unknown MAC: %v, %+v; want no answer, NoGroup, the MAC", reply, why)
	}
	if why := func() Refusal { _, w := ask(sol, other, snapshot(t, known)); return w }(); why.Client.UUID != "12345678-1234-5678-1234-56789abcdef0" {
		t.Errorf("UUID %q", why.Client.UUID)
	}
	withDefault := snapshot(t, map[string]string{"default": "profile: p\n"})
	if reply, why := ask(sol, privacyLL, withDefault); reply == nil || reply.Client.MAC != nil {
		t.Errorf("a default group does not serve a client of unknown MAC: %v %s", reply, why)
	}
	if reply, why := ask(sol, linkLocal, nil); reply != nil || why.Reason == "" {
		t.Errorf("answered before a first snapshot: %v", reply)
	}
	grub := snapshot(t, map[string]string{"vm": "profile: p\nloader: grub\nselector: {mac: \"52:54:00:12:34:56\"}\n"})
	if reply, why := ask(sol, linkLocal, grub); reply != nil || !strings.Contains(why.Reason, "grub") {
		t.Errorf("GRUB machine: %v (%s), want refused", reply, why)
	}
	// iPXE is past the first loader: the script decides.
	if reply, why := ask(ipxe(11), linkLocal, grub); reply == nil {
		t.Errorf("iPXE on a GRUB machine: %s", why)
	}
}

func TestEUI64(t *testing.T) {
	for addr, want := range map[string]string{
		"fe80::5054:ff:fe12:3456":   "52:54:00:12:34:56",
		"fe80::200:ff:fe00:1":       "00:00:00:00:00:01",
		"fd77::5054:ff:fe12:3456":   "", // not link-local: could be anything
		"fe80::1c2d:3e4f:5a6b:7c8d": "",
		"10.0.0.1":                  "",
	} {
		got := ""
		if m := eui64MAC(netip.MustParseAddr(addr)); m != nil {
			got = m.String()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

// FuzzAnswer: any bytes either fail to parse, get no answer, or get an
// answer to a boot client that carries no address and whose options are
// well formed.
func FuzzAnswer(f *testing.F) {
	snap := snapshot(f, map[string]string{"default": "profile: p\n"})
	for _, s := range [][]byte{
		edk2(1, duidUUID, pxeX64, 7, nil), edk2(1, duidLL, httpX64, 16, nil), edk2BootServer(ourDUID), ipxe(11), ipxe(1),
		relayed(edk2(1, duidUUID, pxeX64, 7, nil), net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	for _, c := range captures(f) {
		f.Add(c.data, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, bootServer bool) {
		msg, err := dhcpv6.FromBytes(data)
		if err != nil {
			return
		}
		port := ServerPort
		if bootServer {
			port = BootServerPort
		}
		reply, _ := Answer(Request{Msg: msg, From: linkLocal, Port: port}, snap, cfg)
		if reply == nil {
			return
		}
		wire := reply.Msg.ToBytes()
		inner, _ := innermost(t, wire)
		got, _ := options(t, inner[4:])
		for _, code := range []uint16{3, 4, 25, 13} {
			if _, ok := got[code]; ok {
				t.Fatalf("answer carries option %d", code)
			}
		}
		if len(got[59]) == 0 || len(got[59]) > maxURL || got[1] == nil || !bytes.Equal(got[2], ourDUID) {
			t.Fatalf("bad answer %x", wire)
		}
		if reply.Client.Vendor == "" && !reply.Client.IPXE {
			t.Fatalf("answered a client that is not a boot client")
		}
	})
}

type capture struct {
	name string
	data []byte
}

// captures are the firmware packets recorded in the lab (testdata/*.bin,
// see testdata/README.md), fuzz seeds and replay cases.
func captures(t testing.TB) []capture {
	files, _ := filepath.Glob("testdata/*.bin")
	var out []capture
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, capture{strings.TrimSuffix(filepath.Base(f), ".bin"), data})
	}
	return out
}
