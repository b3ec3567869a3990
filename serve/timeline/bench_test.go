package timeline

import (
	"net/netip"
	"testing"
)

// BenchmarkDHCPFleet is one DHCP event for each of 10,000 machines in
// turn, the recorder at its default cap and full: what the ProxyDHCP
// path adds per packet in a fleet, cache misses included.
func BenchmarkDHCPFleet(b *testing.B) {
	r := New(Options{})
	const n = 10000
	for i := range n {
		r.DHCP(mac(i), StageOffer, netip.Addr{}, "ipxe.efi")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.DHCP(mac(i), StageOffer, netip.Addr{}, "ipxe.efi")
		i = (i + 1) % n
	}
}
