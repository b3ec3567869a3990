package proxydhcp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/pxeops/pxeops/internal/benchcpu"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// The requests of TestAnswers are built field by field after what
// the specifications and internal/e2e/README.md record, to cover cases the lab's firmware does
// not send (old ROMs, arm64, ia32, relays); TestCapturedRequests replays
// real captures.

var cfg = Config{ServerIP: net.IPv4(10, 77, 0, 3), ServerURL: "http://10.77.0.3:8080", BIOSFile: "undionly.kpxe", EFIFile: "ipxe.efi"}

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

var guid = append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)

func request(t testing.TB, mt dhcpv4.MessageType, class string, arch uint16, extra ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	t.Helper()
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithBroadcast(true)}
	if class != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)))
	}
	if arch != 0xffff {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(arch >> 8), byte(arch)})))
	}
	for _, o := range extra {
		mods = append(mods, dhcpv4.WithOption(o))
	}
	req, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAnswers(t *testing.T) {
	snap := snapshot(t, known)
	ipxeUserClass := dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))
	guidOpt := dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid)
	for _, c := range []struct {
		name    string
		req     *dhcpv4.DHCPv4
		port    Port
		file    string
		msg     dhcpv4.MessageType
		opt43   bool
		dropped string
	}{
		{name: "EDK2 UEFI x64 DISCOVER", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", 7, guidOpt), port: ProxyPort, file: "ipxe.efi", msg: dhcpv4.MessageTypeOffer},
		{name: "EDK2 REQUEST to the boot server", req: request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", 7, guidOpt), port: BootServerPort, file: "ipxe.efi", msg: dhcpv4.MessageTypeAck},
		{name: "BIOS PXE ROM", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0), port: ProxyPort, file: "undionly.kpxe", msg: dhcpv4.MessageTypeOffer, opt43: true},
		{name: "old ROM without option 93", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient", 0xffff), port: ProxyPort, file: "undionly.kpxe", msg: dhcpv4.MessageTypeOffer, opt43: true},
		{name: "iPXE (option 77)", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0, ipxeUserClass), port: ProxyPort, file: "http://10.77.0.3:8080/boot.ipxe", msg: dhcpv4.MessageTypeOffer},
		{name: "iPXE (option 175)", req: request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003010", 7, dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{1, 1, 1})), port: ProxyPort, file: "http://10.77.0.3:8080/boot.ipxe", msg: dhcpv4.MessageTypeAck},
		{name: "udhcpc", req: request(t, dhcpv4.MessageTypeDiscover, "udhcp 1.35.0", 0xffff), port: ProxyPort, dropped: "not a PXE client"},
		{name: "no option 60", req: request(t, dhcpv4.MessageTypeDiscover, "", 0xffff), port: ProxyPort, dropped: "not a PXE client"},
		{name: "arm64 without a binary", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00011:UNDI:003000", 11), port: ProxyPort, dropped: "no arm64 iPXE binary"},
		{name: "ia32 UEFI", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00006:UNDI:003000", 6), port: ProxyPort, dropped: "not served"},
		{name: "DISCOVER on 4011", req: request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", 7), port: BootServerPort, dropped: "not for a boot server"},
		{name: "UEFI HTTP boot", req: request(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016:UNDI:003000", 16), port: ProxyPort, file: "http://10.77.0.3:8080/ipxe-bin/ipxe.efi", msg: dhcpv4.MessageTypeOffer},
		{name: "arm64 HTTP boot without a binary", req: request(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00019:UNDI:003000", 19), port: ProxyPort, dropped: "no arm64 iPXE binary"},
	} {
		reply, why := Answer(c.req, c.port, snap, cfg)
		if c.dropped != "" {
			if reply != nil || !bytes.Contains([]byte(why.Reason), []byte(c.dropped)) {
				t.Errorf("%s: answered %v (%q); want no answer because %q", c.name, reply, why, c.dropped)
			}
			continue
		}
		if reply == nil {
			t.Errorf("%s: no answer: %s", c.name, why)
			continue
		}
		checkProxyReply(t, c.name, c.req, reply)
		if reply.BootFileName != c.file || reply.MessageType() != c.msg {
			t.Errorf("%s: file %q type %s; want %q %s", c.name, reply.BootFileName, reply.MessageType(), c.file, c.msg)
		}
		if has43 := reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation) != nil; has43 != c.opt43 {
			t.Errorf("%s: option 43 present %v, want %v", c.name, has43, c.opt43)
		}
		if g := c.req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); g != nil && !bytes.Equal(reply.GetOneOption(dhcpv4.OptionClientMachineIdentifier), g) {
			t.Errorf("%s: option 97 not echoed", c.name)
		}
	}
}

// checkProxyReply holds for every answer: a boot reply for the same
// transaction that never hands out an address or lease.
func checkProxyReply(t *testing.T, name string, req, reply *dhcpv4.DHCPv4) {
	t.Helper()
	if reply.OpCode != dhcpv4.OpcodeBootReply || reply.TransactionID != req.TransactionID ||
		!bytes.Equal(reply.ClientHWAddr, req.ClientHWAddr) || reply.Flags != req.Flags || !reply.GatewayIPAddr.Equal(req.GatewayIPAddr) {
		t.Errorf("%s: header not copied from the request: %v", name, reply)
	}
	if !reply.YourIPAddr.Equal(net.IPv4zero) || !reply.ServerIPAddr.Equal(cfg.ServerIP) || !reply.ServerIdentifier().Equal(cfg.ServerIP) {
		t.Errorf("%s: yiaddr %v siaddr %v server id %v", name, reply.YourIPAddr, reply.ServerIPAddr, reply.ServerIdentifier())
	}
	wantClass := "PXEClient"
	if strings.HasPrefix(req.ClassIdentifier(), "HTTPClient") {
		wantClass = "HTTPClient"
	}
	if reply.ClassIdentifier() != wantClass {
		t.Errorf("%s: option 60 = %q, want %q", name, reply.ClassIdentifier(), wantClass)
	}
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionDomainNameServer} {
		if reply.GetOneOption(code) != nil {
			t.Errorf("%s: a proxy reply carries %s", name, code)
		}
	}
}

// The snapshot decides: a machine no group could match gets no offer,
// and nothing is offered before a first snapshot is served.
func TestSnapshotDecides(t *testing.T) {
	req := request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", 7)
	req.ClientHWAddr, _ = net.ParseMAC("52:54:00:99:99:99")
	if reply, why := Answer(req, ProxyPort, snapshot(t, known), cfg); reply != nil || why.Reason == "" || !why.NoGroup {
		t.Errorf("unknown MAC: %v, %+v; want no answer, NoGroup", reply, why)
	}
	withDefault := snapshot(t, map[string]string{"default": "profile: p\n"})
	if reply, _ := Answer(req, ProxyPort, withDefault, cfg); reply == nil {
		t.Error("a default group does not serve an unknown MAC")
	}
	if reply, why := Answer(req, ProxyPort, nil, cfg); reply != nil || why.Reason != "no config served yet" || why.NoGroup {
		t.Errorf("answered before any snapshot: %v %q", reply, why)
	}
}

// A relayed request's reply keeps giaddr, the relay agent information
// (option 82) and the client identifier (option 61).
func TestRelayedRequestKeepsGiaddr(t *testing.T) {
	agent := []byte{1, 4, 'p', 'o', 'r', 't'}
	clientID := []byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
	req := request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0,
		dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, agent), dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, clientID))
	req.GatewayIPAddr = net.IPv4(10, 1, 2, 1)
	reply, why := Answer(req, ProxyPort, snapshot(t, known), cfg)
	if reply == nil || !reply.GatewayIPAddr.Equal(req.GatewayIPAddr) {
		t.Fatalf("relayed request: %v %s", reply, why)
	}
	if !bytes.Equal(reply.GetOneOption(dhcpv4.OptionRelayAgentInformation), agent) || !bytes.Equal(reply.GetOneOption(dhcpv4.OptionClientIdentifier), clientID) {
		t.Errorf("options 82 and 61 not echoed: %v", reply)
	}
}

// FuzzAnswer: any bytes either fail to parse, get no answer, or get a
// proxy answer to a PXE client; never a panic, never an address.
func FuzzAnswer(f *testing.F) {
	snap := snapshot(f, map[string]string{"default": "profile: p\n"})
	for _, req := range []*dhcpv4.DHCPv4{
		request(f, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", 7),
		request(f, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0, dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))),
		request(f, dhcpv4.MessageTypeDiscover, "udhcp 1.35.0", 0xffff),
	} {
		f.Add(req.ToBytes(), uint16(67))
	}
	captures, _ := filepath.Glob("../../testdata/dhcp/*.bin")
	for _, c := range captures {
		if data, err := os.ReadFile(c); err == nil {
			f.Add(data, uint16(67))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		p := ProxyPort
		if port%2 == 1 {
			p = BootServerPort
		}
		reply, _ := Answer(req, p, snap, cfg)
		if reply == nil {
			return
		}
		if !reply.YourIPAddr.Equal(net.IPv4zero) || len(reply.BootFileName) > maxBootFile {
			t.Fatalf("bad answer %v", reply)
		}
		if class := req.ClassIdentifier(); !strings.HasPrefix(class, "PXEClient") && !strings.HasPrefix(class, "HTTPClient") {
			t.Fatalf("answered a non-PXE client (option 60 %q)", class)
		}
		reply.ToBytes()
	})
}

// Captured requests (testdata/dhcp/README.md) get the answers the
// firmware booted with in the lab.
func TestCapturedRequests(t *testing.T) {
	snap := snapshot(t, known)
	for _, c := range []struct {
		file  string
		port  Port
		boot  string
		msg   dhcpv4.MessageType
		opt43 bool
	}{
		{"seabios-ipxe-discover", ProxyPort, "http://10.77.0.3:8080/boot.ipxe", dhcpv4.MessageTypeOffer, false},
		{"seabios-ipxe-request", ProxyPort, "http://10.77.0.3:8080/boot.ipxe", dhcpv4.MessageTypeAck, false},
		{"edk2-discover", ProxyPort, "ipxe.efi", dhcpv4.MessageTypeOffer, false},
		{"edk2-request", ProxyPort, "ipxe.efi", dhcpv4.MessageTypeAck, false},
		{"edk2-request-4011", BootServerPort, "ipxe.efi", dhcpv4.MessageTypeAck, false},
		{"ipxe-efi-discover", ProxyPort, "http://10.77.0.3:8080/boot.ipxe", dhcpv4.MessageTypeOffer, false},
		{"ipxe-efi-request", ProxyPort, "http://10.77.0.3:8080/boot.ipxe", dhcpv4.MessageTypeAck, false},
		{"udhcpc-discover", ProxyPort, "", 0, false},
		{"udhcpc-request", ProxyPort, "", 0, false},
	} {
		req := capture(t, c.file)
		reply, why := Answer(req, c.port, snap, cfg)
		if c.boot == "" {
			if reply != nil {
				t.Errorf("%s: answered a non-PXE client: %v", c.file, reply)
			}
			continue
		}
		if reply == nil {
			t.Errorf("%s: no answer: %s", c.file, why)
			continue
		}
		checkProxyReply(t, c.file, req, reply)
		if reply.BootFileName != c.boot || reply.MessageType() != c.msg || (reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation) != nil) != c.opt43 {
			t.Errorf("%s: file %q type %s option 43 %v", c.file, reply.BootFileName, reply.MessageType(), reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation))
		}
		if g := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); g != nil && !bytes.Equal(reply.GetOneOption(dhcpv4.OptionClientMachineIdentifier), g) {
			t.Errorf("%s: option 97 not echoed", c.file)
		}
	}
}

// capture reads testdata/dhcp/<name>.bin, a packet captured from real
// firmware (testdata/dhcp/README.md).
func capture(t testing.TB, name string) *dhcpv4.DHCPv4 {
	t.Helper()
	data, err := os.ReadFile("../../testdata/dhcp/" + name + ".bin")
	if err != nil {
		t.Fatal(err)
	}
	req, err := dhcpv4.FromBytes(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return req
}

// BenchmarkAnswer is one ProxyDHCP packet's work: parse, decide, encode.
func BenchmarkAnswer(b *testing.B) { benchAnswer(b, New(cfg, nil, nil, nil)) }

// benchAnswer is BenchmarkAnswer's loop, and what the server loop tells
// s's timeline of the reply when it has one.
func benchAnswer(b *testing.B, s *Server) {
	snap := snapshot(b, known)
	data, err := os.ReadFile("../../testdata/dhcp/edk2-discover.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := benchcpu.Start()
	for b.Loop() {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			b.Fatal(err)
		}
		reply, _ := Answer(req, ProxyPort, snap, s.cfg)
		if reply == nil {
			b.Fatal("no answer")
		}
		reply.ToBytes()
		if s.cfg.Timeline != nil {
			s.noteAnswer(req, ProxyPort, reply)
		}
	}
	cpu.Report(b)
}

// BenchmarkAnswerTimeline is BenchmarkAnswer plus what the server loop
// tells the timeline of the reply, without and with one: run side by
// side, the difference is the timeline's cost per packet. "one" is one
// MAC over and over (the steady state, all in cache); "fleet" is 10,000
// groups by MAC and requests from each in turn, the recorder at its
// default cap of 10,000 machines, so both the lookup and the record
// miss the cache as they do for a fleet.
func BenchmarkAnswerTimeline(b *testing.B) {
	fleet := map[string]string{}
	for i := range 10000 {
		fleet[fmt.Sprint("m", i)] = fmt.Sprintf("profile: p\nselector: {mac: %q}\n", fleetMAC(i).String())
	}
	for _, machines := range []string{"one", "fleet"} {
		for _, tl := range []string{"off", "on"} {
			b.Run("machines="+machines+"/timeline="+tl, func(b *testing.B) {
				c := cfg
				if tl == "on" {
					c.Timeline = timeline.New(timeline.Options{})
				}
				s := New(c, nil, nil, nil)
				if machines == "one" {
					benchAnswer(b, s)
					return
				}
				benchFleet(b, s, snapshot(b, fleet))
			})
		}
	}
}

func fleetMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, 1, byte(i >> 8), byte(i)}
}

// benchFleet is benchAnswer's loop over snap's 10,000 machines in turn:
// the captured DISCOVER with its chaddr rewritten.
func benchFleet(b *testing.B, s *Server, snap *render.Snapshot) {
	data, err := os.ReadFile("../../testdata/dhcp/edk2-discover.bin")
	if err != nil {
		b.Fatal(err)
	}
	packets := make([][]byte, 10000)
	for i := range packets {
		packets[i] = bytes.Clone(data)
		copy(packets[i][28:34], fleetMAC(i)) // chaddr
	}
	if s.cfg.Timeline != nil { // a fleet already seen: the rings made
		for _, p := range packets {
			req, _ := dhcpv4.FromBytes(p)
			s.noteAnswer(req, ProxyPort, &dhcpv4.DHCPv4{BootFileName: "ipxe.efi"})
		}
	}
	b.ReportAllocs()
	cpu := benchcpu.Start()
	i := 0
	for b.Loop() {
		req, err := dhcpv4.FromBytes(packets[i])
		if err != nil {
			b.Fatal(err)
		}
		reply, why := Answer(req, ProxyPort, snap, s.cfg)
		if reply == nil {
			b.Fatal("no answer: ", why)
		}
		reply.ToBytes()
		if s.cfg.Timeline != nil {
			s.noteAnswer(req, ProxyPort, reply)
		}
		i = (i + 1) % len(packets)
	}
	cpu.Report(b)
}
