package neighbour

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// msg builds one RTM_NEWNEIGH message as the kernel sends it.
func msg(state uint16, dst []byte, ll []byte) []byte {
	attr := func(typ uint16, v []byte) []byte {
		a := make([]byte, align4(4+len(v)))
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], typ)
		copy(a[4:], v)
		return a
	}
	body := make([]byte, ndmsgLen)
	body[0] = 2 // AF_INET
	binary.NativeEndian.PutUint32(body[4:8], 2)
	binary.NativeEndian.PutUint16(body[8:10], state)
	if dst != nil {
		body = append(body, attr(ndaDst, dst)...)
	}
	if ll != nil {
		body = append(body, attr(ndaLLAddr, ll)...)
	}
	return header(rtmNewNeigh, body)
}

func header(typ uint16, body []byte) []byte {
	h := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(body))
	binary.NativeEndian.PutUint32(h[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(h[4:6], typ)
	return append(h, body...)
}

var (
	macA = []byte{0x52, 0x54, 0, 0, 0, 1}
	macB = []byte{0x52, 0x54, 0, 0, 0, 2}
	ip5  = []byte{10, 0, 0, 5}
)

func dumpOf(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
	}
	return append(b, header(nlmsgDone, make([]byte, 4))...)
}

func TestParse(t *testing.T) {
	v6 := netip.MustParseAddr("fe80::1").AsSlice()
	got, err := Parse(dumpOf(
		msg(0x02, ip5, macA),                          // reachable
		msg(0x04, []byte{10, 0, 0, 6}, macB),          // stale
		msg(0x80, []byte{10, 0, 0, 7}, macA),          // permanent
		msg(0x20, []byte{10, 0, 0, 8}, macA),          // failed
		msg(0x01, []byte{10, 0, 0, 9}, nil),           // incomplete
		msg(0x40, []byte{127, 0, 0, 1}, macA),         // noarp
		msg(0x02, []byte{10, 0, 0, 10}, []byte{1, 2}), // not Ethernet
		msg(0x02, v6, macA), msg(0x02, v6, macB),      // one link-local address, two links
		header(24, make([]byte, 8)), // another message type
	))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.0.0.5": "52:54:00:00:00:01", "10.0.0.6": "52:54:00:00:00:02", "10.0.0.7": "52:54:00:00:00:01", "fe80::1": ""}
	if len(got) != len(want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	for ip, mac := range want {
		if m, ok := got[netip.MustParseAddr(ip)]; !ok || m != mac {
			t.Errorf("%s: %q %v, want %q", ip, m, ok, mac)
		}
	}
	for name, b := range map[string][]byte{
		"truncated header":  msg(0x02, ip5, macA)[:10],
		"length past end":   msg(0x02, ip5, macA)[:30],
		"short neighbour":   header(rtmNewNeigh, make([]byte, 4)),
		"bad attribute len": append(msg(0x02, nil, nil)[:nlmsgHdrLen+ndmsgLen:nlmsgHdrLen+ndmsgLen], 0xff, 0, 1, 0),
		"kernel error":      header(nlmsgError, make([]byte, 20)),
	} {
		if name == "bad attribute len" {
			binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
		}
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// fakeKernel counts reads and serves the table it is set to.
type fakeKernel struct {
	mu    sync.Mutex
	table []byte
	err   error
	reads atomic.Int32
	slow  time.Duration
}

func (k *fakeKernel) read() ([]byte, error) {
	k.reads.Add(1)
	time.Sleep(k.slow)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.table, k.err
}

func (k *fakeKernel) set(b []byte, err error) {
	k.mu.Lock()
	k.table, k.err = b, err
	k.mu.Unlock()
}

// Each lookup reads the table anew: an address whose owner changed is
// seen at once, and an unreadable table finds nothing.
func TestTableReadsAfterEachAsk(t *testing.T) {
	k := &fakeKernel{}
	k.set(dumpOf(msg(0x02, ip5, macA)), nil)
	tab := newTable(k.read)
	a := netip.MustParseAddr("10.0.0.5")
	if mac, ok := tab.MAC(a); !ok || mac != "52:54:00:00:00:01" || k.reads.Load() != 1 {
		t.Fatalf("first lookup: %q %v after %d reads", mac, ok, k.reads.Load())
	}
	if mac, ok := tab.MAC(netip.AddrFrom16(a.As16())); !ok || mac != "52:54:00:00:00:01" {
		t.Errorf("the IPv4-mapped address: %q %v", mac, ok)
	}
	// The address taken over by another host right after: seen at once.
	k.set(dumpOf(msg(0x02, ip5, macB)), nil)
	if mac, _ := tab.MAC(a); mac != "52:54:00:00:00:02" {
		t.Errorf("after a takeover: %q, the old owner", mac)
	}
	if n := k.reads.Load(); n != 3 {
		t.Errorf("3 lookups, %d reads", n)
	}
	k.set(nil, errors.New("netlink: boom"))
	if _, ok := tab.MAC(a); ok || tab.Err() == nil {
		t.Errorf("unreadable table: found %v, err %v", ok, tab.Err())
	}
}

// Misses that arrive together share one read.
func TestTableCoalescesMisses(t *testing.T) {
	k := &fakeKernel{slow: 20 * time.Millisecond}
	k.set(dumpOf(msg(0x02, ip5, macA)), nil)
	tab := newTable(k.read)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, ok := tab.MAC(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})); ok {
				t.Error("found an address the table lacks")
			}
		})
	}
	wg.Wait()
	// The first read, and at most one more for those that asked while it ran.
	if n := k.reads.Load(); n > 2 {
		t.Errorf("64 concurrent misses read the table %d times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(dumpOf(msg(0x02, ip5, macA), msg(0x04, netip.MustParseAddr("fe80::1").AsSlice(), macB)))
	f.Add(msg(0x02, ip5, macA))
	f.Add(header(nlmsgError, make([]byte, 20)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		for ip, mac := range m {
			if !ip.IsValid() || ip.Is4In6() || (mac != "" && len(mac) != 17) {
				t.Fatalf("Parse gave %v → %q", ip, mac)
			}
		}
	})
}

// BenchmarkKernelTable is one lookup in this host's kernel table: a
// netlink dump read and parsed (lookups that come together share one).
func BenchmarkKernelTable(b *testing.B) {
	tab := New()
	ip := netip.MustParseAddr("198.51.100.77") // TEST-NET-2: nobody's neighbour
	for b.Loop() {
		if _, ok := tab.MAC(ip); ok {
			b.Fatal("found")
		}
	}
}
