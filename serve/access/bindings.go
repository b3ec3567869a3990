package access

import (
	"net/netip"
	"sync"
	"time"
)

// DefaultBindingTTL is how long a boot-server exchange vouches for its
// address: iPXE asks for its script within a second of it.
const DefaultBindingTTL = 2 * time.Minute

// DefaultMaxBindings bounds the store: a flood of port-4011 requests
// with made-up MACs costs at most this many entries.
const DefaultMaxBindings = 65536

// BindingStore remembers, per MAC, the address of its latest port-4011
// exchange, for ttl. The latest wins: UEFI firmware and the iPXE it
// loads may get different addresses from the site's DHCP server, and
// the script is asked for from the second. It is bounded: entries
// expire in the order they came (all live as long), and when the store
// is full of live ones, new MACs are not learned (their routed boots are
// refused) until some expire.
type BindingStore struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	byMAC map[string]binding
	order []learned // oldest first from head; may hold superseded entries
	head  int
}

type binding struct {
	ip netip.Addr
	at time.Time
}

type learned struct {
	mac string
	at  time.Time
}

// NewBindings makes a store; ttl and max of 0 take the defaults.
func NewBindings(ttl time.Duration, max int) *BindingStore {
	if ttl <= 0 {
		ttl = DefaultBindingTTL
	}
	if max <= 0 {
		max = DefaultMaxBindings
	}
	return &BindingStore{ttl: ttl, max: max, byMAC: map[string]binding{}}
}

// Learn records that mac's boot-server exchange came from ip at now. It
// reports false when the store is full and mac was not learned.
func (s *BindingStore) Learn(mac string, ip netip.Addr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if _, ok := s.byMAC[mac]; !ok && len(s.byMAC) >= s.max {
		return false
	}
	if len(s.order)-s.head >= 2*s.max { // re-learned MACs left superseded entries behind
		s.compact()
	}
	s.byMAC[mac] = binding{ip: ip.Unmap(), at: now}
	s.order = append(s.order, learned{mac, now})
	return true
}

// Bound reports whether mac was last seen at ip less than ttl ago.
func (s *BindingStore) Bound(mac string, ip netip.Addr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.byMAC[mac]
	return ok && b.ip == ip.Unmap() && now.Sub(b.at) < s.ttl && !now.Before(b.at)
}

// Len is the number of MACs held.
func (s *BindingStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byMAC)
}

// expire drops the entries older than ttl; s is locked.
func (s *BindingStore) expire(now time.Time) {
	for ; s.head < len(s.order) && now.Sub(s.order[s.head].at) >= s.ttl; s.head++ {
		l := s.order[s.head]
		if b, ok := s.byMAC[l.mac]; ok && b.at.Equal(l.at) {
			delete(s.byMAC, l.mac)
		}
	}
	// The expired prefix is given back once it is half the slice, so
	// each entry is copied O(1) times.
	if s.head > 0 && s.head >= len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

// compact drops superseded entries from order; s is locked.
func (s *BindingStore) compact() {
	kept := s.order[:0]
	for _, l := range s.order[s.head:] {
		if b, ok := s.byMAC[l.mac]; ok && b.at.Equal(l.at) {
			kept = append(kept, l)
		}
	}
	s.order, s.head = kept, 0
}
