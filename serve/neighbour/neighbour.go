// Package neighbour reads the kernel's neighbour table (ARP and NDP
// entries) over netlink: which MAC the directly connected host at an
// address has. The TCP handshake of a request from the server's own
// segment needed that entry, so it is there when the request is; a
// request through a router has none (the router's address does).
package neighbour

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxEntries bounds one read; the kernel keeps far fewer by default
// (net.ipv4.neigh.default.gc_thresh3 is 1024).
const maxEntries = 1 << 16

// Table answers access.Neighbours from the kernel's table. Every
// lookup is answered from a read that started after it was asked, never
// from an older one: a cached entry would answer for an address whose
// owner changed since (a host that takes over a machine's address right
// after the machine's request, which the e2e lab does, got the machine's
// config from a one-second cache). Lookups that come together share one
// read, so a flood costs one read at a time.
type Table struct {
	read func() ([]byte, error)
	now  func() time.Time

	mu         sync.Mutex
	cur        *reading
	refreshing chan struct{} // closed when the read under way ends
}

type reading struct {
	start time.Time // entries present then are in byIP
	byIP  map[netip.Addr]string
	err   error
}

// New returns the kernel's table.
func New() *Table { return newTable(dump) }

func newTable(read func() ([]byte, error)) *Table {
	return &Table{read: read, now: time.Now}
}

// MAC returns the MAC of the neighbour at ip. An address that two
// entries give different MACs (a link-local address on two links) is
// ("", true): someone is there, and it is not a MAC anyone asks for.
// When the table cannot be read, nothing is found.
func (t *Table) MAC(ip netip.Addr) (string, bool) {
	ip = ip.Unmap().WithZone("")
	r := t.fresh(t.now())
	mac, ok := r.byIP[ip]
	return mac, ok
}

// Err is the last read's error, if it failed.
func (t *Table) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		return nil
	}
	return t.cur.err
}

// fresh returns a reading started at or after asked: the one under way
// if it started late enough, else a new one. Concurrent misses share a
// read, so a flood of requests from unknown addresses costs one read at
// a time.
func (t *Table) fresh(asked time.Time) *reading {
	for {
		t.mu.Lock()
		if r := t.cur; r != nil && !r.start.Before(asked) {
			t.mu.Unlock()
			return r
		}
		if ch := t.refreshing; ch != nil {
			t.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		t.refreshing = ch
		t.mu.Unlock()

		r := &reading{start: t.now()}
		b, err := t.read()
		if err == nil {
			r.byIP, err = Parse(b)
		}
		r.err = err
		t.mu.Lock()
		t.cur, t.refreshing = r, nil
		t.mu.Unlock()
		close(ch)
		return r
	}
}

// Netlink constants (linux/neighbour.h, linux/rtnetlink.h), here so the
// parser builds and is fuzzed everywhere.
const (
	nlmsgHdrLen   = 16
	nlmsgDone     = 3
	nlmsgError    = 2
	rtmNewNeigh   = 28
	ndmsgLen      = 12
	ndaDst        = 1
	ndaLLAddr     = 2
	nudIncomplete = 0x01
	nudFailed     = 0x20
	nudNoARP      = 0x40
	nudNone       = 0x00
)

// Parse reads a netlink dump of RTM_NEWNEIGH messages into address →
// MAC, keeping Ethernet entries in a usable state (reachable, stale,
// delay, probe, permanent) and marking an address two entries disagree
// on with "". It is strict about lengths and bounded in entries.
func Parse(b []byte) (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return nil, errors.New("netlink: truncated header")
		}
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if n < nlmsgHdrLen || n > len(b) {
			return nil, errors.New("netlink: bad message length")
		}
		msg := b[nlmsgHdrLen:n]
		if next := align4(n); next < len(b) {
			b = b[next:]
		} else {
			b = nil
		}
		switch typ {
		case nlmsgDone:
			return out, nil
		case nlmsgError:
			return nil, errors.New("netlink: error reading the neighbour table")
		case rtmNewNeigh:
		default:
			continue
		}
		ip, mac, ok, err := parseNeigh(msg)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if old, seen := out[ip]; seen && old != mac {
			mac = ""
		}
		if _, seen := out[ip]; !seen && len(out) >= maxEntries {
			return nil, errors.New("netlink: more neighbour entries than can be held")
		}
		out[ip] = mac
	}
	return out, nil
}

func parseNeigh(msg []byte) (netip.Addr, string, bool, error) {
	if len(msg) < ndmsgLen {
		return netip.Addr{}, "", false, errors.New("netlink: truncated neighbour message")
	}
	state := binary.NativeEndian.Uint16(msg[8:10])
	var ip netip.Addr
	var ll []byte
	for a := msg[ndmsgLen:]; len(a) > 0; {
		if len(a) < 4 {
			return netip.Addr{}, "", false, errors.New("netlink: truncated attribute")
		}
		l := int(binary.NativeEndian.Uint16(a[0:2]))
		typ := binary.NativeEndian.Uint16(a[2:4]) & 0x3fff // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if l < 4 || l > len(a) {
			return netip.Addr{}, "", false, errors.New("netlink: bad attribute length")
		}
		v := a[4:l]
		switch typ {
		case ndaDst:
			ip, _ = netip.AddrFromSlice(v)
		case ndaLLAddr:
			ll = v
		}
		if next := align4(l); next < len(a) {
			a = a[next:]
		} else {
			a = nil
		}
	}
	if state == nudNone || state&(nudIncomplete|nudFailed|nudNoARP) != 0 || !ip.IsValid() || len(ll) != 6 {
		return netip.Addr{}, "", false, nil
	}
	return ip.Unmap(), net.HardwareAddr(ll).String(), true, nil
}

func align4(n int) int { return (n + 3) &^ 3 }
