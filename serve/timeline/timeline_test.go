package timeline

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxeops/pxeops/render"
)

// clock is a fake Now that moves one second per call.
type clock struct{ t time.Time }

func (c *clock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)} }

func mac(i int) MAC { return MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func group(id, profile string) *render.Group {
	return &render.Group{ID: id, Profile: &render.Profile{ID: profile,
		BootFiles: render.BootFiles{Kernel: "http://pxe.test/assets/" + profile + "/vmlinuz",
			Initrds: []render.Initrd{{Name: "initrd.img", URL: "http://pxe.test/assets/" + profile + "/initrd.img"}}}}}
}

func TestEventsPerMachineAreBounded(t *testing.T) {
	r := New(Options{Events: 4, Now: newClock().now})
	for i := range 10 {
		r.DHCP(mac(1), StageOffer, netip.Addr{}, fmt.Sprintf("file%d", i))
	}
	m, ok := r.Machine(mac(1).String())
	if !ok {
		t.Fatal("machine not recorded")
	}
	var files []string
	for _, e := range m.Events {
		files = append(files, e.File)
	}
	if got := strings.Join(files, " "); got != "file6 file7 file8 file9" {
		t.Errorf("events %q; want the last four, oldest first", got)
	}
	if m.Stage != StageOffer || !m.LastSeen.Equal(m.Events[3].At) {
		t.Errorf("summary %+v", m)
	}
}

func TestOldestMachineIsEvicted(t *testing.T) {
	r := New(Options{Machines: 3, Now: newClock().now})
	for i := 1; i <= 3; i++ {
		r.DHCP(mac(i), StageOffer, netip.Addr{}, "f")
	}
	r.DHCP(mac(1), StageOffer, netip.Addr{}, "again") // 2 is now the one seen longest ago
	r.DHCP(mac(4), StageOffer, netip.Addr{}, "f")
	var got []string
	for _, m := range r.Machines() {
		got = append(got, m.MAC)
	}
	want := []string{mac(4).String(), mac(1).String(), mac(3).String()}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("machines %v; want %v (newest first, 2 evicted)", got, want)
	}
	if _, ok := r.Machine(mac(2).String()); ok {
		t.Error("evicted machine still answers")
	}
	// The evicted machine's ring went to 4: nothing of 2's is left in it.
	if m, _ := r.Machine(mac(4).String()); len(m.Events) != 1 {
		t.Errorf("new machine has %d events", len(m.Events))
	}
}

// With the default shard count, no shard holds more than its share: the
// total never passes Machines.
func TestMachinesBoundedAcrossShards(t *testing.T) {
	r := New(Options{Machines: 64 * 64, Now: newClock().now})
	if len(r.machines) != shards {
		t.Fatalf("%d shards", len(r.machines))
	}
	for i := range 3 * 64 * 64 {
		r.DHCP(mac(i), StageOffer, netip.Addr{}, "f")
	}
	if n := len(r.Machines()); n != 64*64 {
		t.Errorf("%d machines kept; want 4096", n)
	}
}

func TestUnmatchedBoundedAndMerged(t *testing.T) {
	clk := newClock()
	r := New(Options{Unmatched: 2, Now: clk.now})
	relay := netip.MustParseAddr("10.0.0.1")
	r.Unmatched(Client{MAC: mac(1), VendorClass: "PXEClient:Arch:00007", Arch: "x86_64"})
	r.Unmatched(Client{MAC: mac(2), VendorClass: "PXEClient:Arch:00000"})
	r.Unmatched(Client{MAC: mac(1), UUID: "4c4c4544-0042-3510-8050-b4c04f4d3232", Relay: relay}) // /ipxe's 404: no vendor class
	r.Unmatched(Client{MAC: mac(3), VendorClass: "HTTPClient"})                                  // 2 is the oldest
	d := r.Discovered()
	if len(d) != 2 || d[0].MAC != mac(1).String() || d[1].MAC != mac(3).String() {
		t.Fatalf("discovered %+v; want 1 and 3", d)
	}
	one := d[0]
	if one.Seen != 2 || one.UUID == "" || one.Arch != "x86_64" || one.VendorClass != "PXEClient:Arch:00007" || one.Relay != "10.0.0.1" || !one.FirstSeen.Before(one.LastSeen) {
		t.Errorf("merged client %+v", one)
	}
	b, _ := json.Marshal(d[1])
	for _, absent := range []string{`"uuid"`, `"arch"`, `"relay"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("unknown field written: %s", b)
		}
	}
	if m, ok := r.Machine(mac(1).String()); !ok || m.Stage != StageUnmatched || m.Group != "" {
		t.Errorf("unmatched machine's timeline %+v", m)
	}
}

func TestAddressesLearnedAndBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(Options{Addresses: 2, Now: newClock().now, Registerer: reg})
	r.TFTP(addr(9), "snponly.efi", 100, OutcomeComplete) // never learned
	for i := 1; i <= 3; i++ {
		r.DHCP(mac(i), StageBootServer, addr(i), "snponly.efi") // 3 pushes 1 out
	}
	r.TFTP(addr(1), "snponly.efi", 100, OutcomeComplete)
	r.TFTP(addr(3), "snponly.efi", 174000, OutcomeComplete)
	if got := testutil.ToFloat64(r.dropped); got != 2 {
		t.Errorf("dropped %v; want 2 (an address never learned, one evicted)", got)
	}
	m, _ := r.Machine(mac(3).String())
	if last := m.Events[len(m.Events)-1]; last.Stage != StageTFTP || last.Bytes != 174000 || last.Remote != addr(3) {
		t.Errorf("tftp event %+v", last)
	}
	if m, _ := r.Machine(mac(1).String()); len(m.Events) != 1 {
		t.Errorf("machine 1 got %d events; its address was forgotten", len(m.Events))
	}
	// An address taken over by another machine moves to it.
	r.DHCP(mac(2), StageOffer, addr(3), "")
	r.Omaha(addr(3), "4081.2.0")
	if m, _ := r.Machine(mac(2).String()); m.Stage != StageOmaha || m.Events[len(m.Events)-1].Version != "4081.2.0" {
		t.Errorf("machine 2 %+v", m)
	}
}

func TestBootThenAssets(t *testing.T) {
	r := New(Options{Now: newClock().now})
	snap := &render.Snapshot{Revision: "abc123"}
	g := group("web-1", "fcos")
	r.Boot(mac(1).String(), addr(1), "ipxe", snap, g)
	r.Asset(addr(1), "/assets/fcos/vmlinuz", 1000, true)
	r.Asset(addr(1), "/assets/fcos/initrd.img", 10, false)
	r.Asset(addr(1), "/assets/other", 5, true)
	r.Asset(addr(1), "/x/assets/fcos/vmlinuz", 5, true) // a suffix of the kernel's path is not the kernel
	m, _ := r.Machine(mac(1).String())
	type ev struct {
		stage            Stage
		outcome, group   string
		revision, remote string
	}
	var got []ev
	for _, e := range m.Events {
		got = append(got, ev{e.Stage, e.Outcome, e.Group, e.Revision, e.Remote.String()})
	}
	want := []ev{
		{StageIPXE, "", "web-1", "abc123", "10.0.0.1"},
		{StageKernel, OutcomeComplete, "web-1", "abc123", "10.0.0.1"},
		{StageInitrd, OutcomeAborted, "web-1", "abc123", "10.0.0.1"},
		{StageAsset, OutcomeComplete, "web-1", "abc123", "10.0.0.1"},
		{StageAsset, OutcomeComplete, "web-1", "abc123", "10.0.0.1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events\n%v\nwant\n%v", got, want)
	}
	if m.Group != "web-1" || m.Profile != "fcos" || m.Revision != "abc123" || m.Stage != StageAsset {
		t.Errorf("summary %+v", m)
	}
	// The Pixiecore API's request is its server's, not the machine's.
	r.Boot(mac(2).String(), addr(2), "pixiecore", snap, g)
	if _, ok := r.Machine(mac(2).String()); ok {
		t.Error("pixiecore answer recorded")
	}
}

func TestJSONShape(t *testing.T) {
	clk := newClock()
	r := New(Options{Now: clk.now})
	r.Boot(mac(1).String(), addr(1), "config", &render.Snapshot{Revision: "r1"}, group("g", "p"))
	m, _ := r.Machine(mac(1).String())
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mac":"52:54:00:00:00:01","group":"g","profile":"p","revision":"r1","stage":"config","last_seen":"2026-12-03T10:00:01Z","ago_seconds":1,` +
		`"events":[{"at":"2026-12-03T10:00:01Z","stage":"config","group":"g","profile":"p","revision":"r1","remote":"10.0.0.1"}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestBootsTotalLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(Options{Pairs: 2, Now: newClock().now, Registerer: reg})
	snap := &render.Snapshot{Revision: "r"}
	for i := range 5 {
		g := group(fmt.Sprint("g", i), "p")
		r.Boot(mac(i).String(), addr(i), "ipxe", snap, g)
		r.Asset(addr(i), "/assets/p/vmlinuz", 1, true)
	}
	r.Unmatched(Client{MAC: mac(99)})
	vec := r.counters.vec
	for _, c := range []struct {
		group, profile, stage string
		want                  float64
	}{
		{"g0", "p", "ipxe", 1}, {"g1", "p", "kernel", 1}, {"other", "other", "ipxe", 3}, {"other", "other", "kernel", 3}, {"", "", "unmatched", 1},
	} {
		if got := testutil.ToFloat64(vec.WithLabelValues(c.group, c.profile, c.stage)); got != c.want {
			t.Errorf("%s/%s/%s = %v; want %v", c.group, c.profile, c.stage, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(vec); n != 2*2+2+1 {
		t.Errorf("%d series", n)
	}
}

func TestParseMAC(t *testing.T) {
	for _, s := range []string{"52:54:00:12:34:56", "ff:FF:00:00:00:0a"} {
		m, ok := ParseMAC(s)
		if !ok || m.String() != strings.ToLower(s) {
			t.Errorf("%s: %v %v", s, m, ok)
		}
	}
	for _, s := range []string{"", "52-54-00-12-34-56", "52:54:00:12:34:5", "52:54:00:12:34:5g", "52:54:00:12:34:567"} {
		if _, ok := ParseMAC(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

// The hot paths allocate nothing once a machine is known, nor when a new
// machine takes the place of the oldest.
func TestRecordDoesNotAllocate(t *testing.T) {
	r := New(Options{Machines: 100})
	snap := &render.Snapshot{Revision: "r"}
	g := group("g", "p")
	s := mac(1).String()
	r.Boot(s, addr(1), "ipxe", snap, g)
	cases := map[string]func(){
		"dhcp":  func() { r.DHCP(mac(1), StageOffer, addr(1), "snponly.efi") },
		"tftp":  func() { r.TFTP(addr(1), "snponly.efi", 10, OutcomeComplete) },
		"boot":  func() { r.Boot(s, addr(1), "ipxe", snap, g) },
		"asset": func() { r.Asset(addr(1), "/assets/p/vmlinuz", 10, true) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs per event", name, n)
		}
	}
	for i := range 200 { // fill, then the map settles
		r.DHCP(mac(i), StageOffer, netip.Addr{}, "f")
	}
	i := 1000
	if n := testing.AllocsPerRun(100, func() { i++; r.DHCP(mac(i), StageOffer, netip.Addr{}, "f") }); n > 0.1 {
		t.Errorf("a new machine at the cap: %v allocs", n)
	}
}
