package timeline

import (
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/pxeops/pxeops/render"
)

// Goroutines record every kind of event for overlapping machines while
// others read the table, single machines and the discovered: under
// -race, any unguarded access fails; the bounds hold throughout.
func TestConcurrentRecordAndRead(t *testing.T) {
	const machines, writers, rounds = 300, 8, 2000
	r := New(Options{Machines: machines / 2, Events: 8, Unmatched: 50, Addresses: machines})
	snap := &render.Snapshot{Revision: "r"}
	groups := []*render.Group{group("a", "p"), group("b", "q")}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				n := (i*7 + w*13) % machines
				switch i % 6 {
				case 0:
					r.DHCP(mac(n), StageBootServer, addr(n), "snponly.efi")
				case 1:
					r.TFTP(addr(n), "snponly.efi", int64(i), OutcomeComplete)
				case 2:
					r.Boot(mac(n).String(), addr(n), "ipxe", snap, groups[i%2])
				case 3:
					r.Asset(addr(n), "/assets/p/vmlinuz", 10, true)
				case 4:
					r.Unmatched(Client{MAC: mac(n), VendorClass: "PXEClient"})
				case 5:
					r.BootIPXE(addr(n))
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ms := r.Machines()
				if len(ms) > machines/2 {
					t.Errorf("%d machines kept", len(ms))
				}
				if len(ms) > 0 {
					m, _ := r.Machine(ms[0].MAC)
					if len(m.Events) > 8 {
						t.Errorf("%d events", len(m.Events))
					}
				}
				if d := r.Discovered(); len(d) > 50 {
					t.Errorf("%d discovered", len(d))
				}
				json.NewEncoder(io.Discard).Encode(ms)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
}
