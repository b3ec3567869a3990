package tftpserver

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"
	"github.com/pxeops/pxeops/serve/timeline"
)

// transfers records what the server tells the timeline.
type transfers struct {
	mu   sync.Mutex
	seen []string
}

func (r *transfers) TFTP(remote netip.Addr, file string, n int64, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, remote.String()+" "+file+" "+outcome+" "+strconv.FormatInt(n, 10))
}

func (r *transfers) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// Each transfer's end reaches the timeline with the file, the bytes sent
// and its outcome, a file that is not there too: how far a machine got.
func TestTimelineHearsTransfers(t *testing.T) {
	rec := &transfers{}
	addr, dir, _ := serveWith(t, nil, func(s *Server) { s.Timeline = rec })
	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	if got, _, err := fetch(t, addr, "ipxe.efi", 1468); err != nil || len(got) != len(want) {
		t.Fatalf("fetch: %d bytes, %v", len(got), err)
	}
	if _, _, err := fetch(t, addr, "absent.efi", 0); err == nil {
		t.Fatal("absent.efi was served")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a third, wrong, record would come now
	got := rec.all()
	slices.Sort(got) // each is told when its last packet is in
	wantLines := []string{"127.0.0.1 absent.efi error: file not found 0", "127.0.0.1 ipxe.efi " + timeline.OutcomeComplete + " " + strconv.Itoa(len(want))}
	if !slices.Equal(got, wantLines) {
		t.Errorf("timeline heard %q, want %q", got, wantLines)
	}
}

// BenchmarkTimeline is one 300 kB transfer over loopback (blksize 1468)
// without and with the timeline told of it: run side by side, the
// difference is the timeline's cost per transfer.
func BenchmarkTimeline(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "timeline=off"
		if on {
			name = "timeline=on"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			os.WriteFile(filepath.Join(dir, "ipxe.efi"), make([]byte, 300_001), 0o644)
			s, err := New(dir, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if on {
				s.Timeline = timeline.New(timeline.Options{})
			}
			conn, err := Listen("127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(conn)
			defer s.Shutdown()
			c, err := tftp.NewClient(conn.LocalAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			c.SetBlockSize(1468)
			b.SetBytes(300_001)
			for b.Loop() {
				wt, err := c.Receive("ipxe.efi", "octet")
				if err != nil {
					b.Fatal(err)
				}
				if n, err := wt.WriteTo(io.Discard); err != nil || n != 300_001 {
					b.Fatal(n, err)
				}
			}
		})
	}
}
