// Command pxestorm simulates machines booting at once against a pxeops
// with --proxy-dhcp, each doing what UEFI firmware then iPXE does:
// ProxyDHCP DISCOVER → OFFER, boot-server REQUEST on port 4011 → ACK,
// TFTP of the boot file, then HTTP /boot.ipxe and /ipxe?mac=. It speaks
// as a DHCP relay (giaddr = its own address), so replies come back by
// unicast to its port 67: run it as root in a network namespace of its
// own next to the server's (internal/loadtest/bench-netboot.sh does).
//
//	pxestorm -server 10.88.0.1 -local 10.88.0.2 -clients 500
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"

	"github.com/pxeops/pxeops/internal/gentree"
)

func main() {
	server := flag.String("server", "10.88.0.1", "pxeops address (ProxyDHCP, TFTP, HTTP on :8080)")
	local := flag.String("local", "10.88.0.2", "this host's address, used as the relay address")
	clients := flag.Int("clients", 500, "machines booting at once (MACs of gentree's first N groups)")
	rate := flag.Int("rate", 0, "instead of the storm: send ProxyDHCP DISCOVERs at this rate and count the offers")
	duration := flag.Duration("duration", 5*time.Second, "with -rate: how long to send")
	flag.Parse()

	relay, err := net.ListenPacket("udp4", *local+":67")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pxestorm:", err)
		os.Exit(1)
	}
	defer relay.Close()
	if *rate > 0 {
		offerRate(relay, *server, net.ParseIP(*local), *rate, *duration)
		return
	}
	d := &demux{waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	go d.run(relay)

	type result struct {
		took time.Duration
		err  error
	}
	results := make([]result, *clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *clients {
		wg.Go(func() {
			t0 := time.Now()
			err := boot(d, relay, *server, net.ParseIP(*local), gentree.MAC(i))
			results[i] = result{time.Since(t0), err}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var took []time.Duration
	failures := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			failures[r.err.Error()]++
			continue
		}
		took = append(took, r.took)
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration {
		if len(took) == 0 {
			return 0
		}
		return took[min(len(took)-1, int(p*float64(len(took))))]
	}
	fmt.Printf("%d clients at once: %d completed, %d failed, all done in %s\n", *clients, len(took), *clients-len(took), elapsed.Round(time.Millisecond))
	fmt.Printf("completion time: p50 %s  p99 %s  max %s\n", pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
	for msg, n := range failures {
		fmt.Printf("  %d× %s\n", n, msg)
	}
	if len(failures) > 0 {
		os.Exit(1)
	}
}

// boot runs one machine's sequence.
func boot(d *demux, relay net.PacketConn, server string, local net.IP, macStr string) error {
	mac, _ := net.ParseMAC(macStr)
	arch := dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7})
	class := dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")
	disc, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(arch), dhcpv4.WithOption(class), dhcpv4.WithGatewayIP(local))
	offer, err := d.exchange(relay, disc, &net.UDPAddr{IP: net.ParseIP(server), Port: 67})
	if err != nil {
		return fmt.Errorf("DISCOVER: %w", err)
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(arch), dhcpv4.WithOption(class))
	bootConn, err := net.ListenPacket("udp4", local.String()+":0")
	if err != nil {
		return err
	}
	defer bootConn.Close()
	ack, err := exchangeDirect(bootConn, req, &net.UDPAddr{IP: net.ParseIP(server), Port: 4011})
	if err != nil {
		return fmt.Errorf("REQUEST to 4011: %w", err)
	}
	c, _ := tftp.NewClient(server + ":69")
	c.SetBlockSize(1468)
	c.SetTimeout(3 * time.Second)
	wt, err := c.Receive(ack.BootFileName, "octet")
	if err != nil {
		return fmt.Errorf("TFTP %s: %w", ack.BootFileName, err)
	}
	if _, err := wt.WriteTo(io.Discard); err != nil {
		return fmt.Errorf("TFTP %s: %w", ack.BootFileName, err)
	}
	for _, path := range []string{"/boot.ipxe", "/ipxe?mac=" + macStr} {
		resp, err := http.Get("http://" + server + ":8080" + path)
		if err != nil {
			return fmt.Errorf("HTTP %s: %w", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("#!ipxe")) {
			return fmt.Errorf("HTTP %s: %d", path, resp.StatusCode)
		}
	}
	return nil
}

// demux hands replies arriving at the relay socket to the client whose
// transaction they answer.
type demux struct {
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

func (d *demux) run(conn net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		d.mu.Lock()
		ch := d.waiting[m.TransactionID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// exchange sends req through the relay socket and waits for its reply,
// resending twice as firmware does.
func (d *demux) exchange(conn net.PacketConn, req *dhcpv4.DHCPv4, to net.Addr) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 1)
	d.mu.Lock()
	d.waiting[req.TransactionID] = ch
	d.mu.Unlock()
	defer func() { d.mu.Lock(); delete(d.waiting, req.TransactionID); d.mu.Unlock() }()
	for range 3 {
		if _, err := conn.WriteTo(req.ToBytes(), to); err != nil {
			return nil, err
		}
		select {
		case m := <-ch:
			return m, nil
		case <-time.After(2 * time.Second):
		}
	}
	return nil, fmt.Errorf("no reply")
}

func exchangeDirect(conn net.PacketConn, req *dhcpv4.DHCPv4, to net.Addr) (*dhcpv4.DHCPv4, error) {
	buf := make([]byte, 1500)
	for range 3 {
		if _, err := conn.WriteTo(req.ToBytes(), to); err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if m, err := dhcpv4.FromBytes(buf[:n]); err == nil && m.TransactionID == req.TransactionID {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("no reply")
}

// offerRate sends DISCOVERs of gentree's machines at a fixed rate and
// counts the offers that come back: the server's sustained answer rate
// and its drops.
func offerRate(relay net.PacketConn, server string, local net.IP, rate int, duration time.Duration) {
	to := &net.UDPAddr{IP: net.ParseIP(server), Port: 67}
	total := int(duration.Seconds() * float64(rate))
	reqs := make([][]byte, 10000)
	for i := range reqs {
		mac, _ := net.ParseMAC(gentree.MAC(i))
		d, _ := dhcpv4.NewDiscovery(mac,
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7})),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
			dhcpv4.WithGatewayIP(local))
		reqs[i] = d.ToBytes()
	}
	// The generator must not be what drops: a large receive buffer, and
	// replies counted by their op byte rather than parsed (parsing
	// allocates, and this generator's GC would then pause the reader).
	if u, ok := relay.(*net.UDPConn); ok {
		u.SetReadBuffer(4 << 20)
	}
	var offers int
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 1500)
		for {
			relay.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := relay.ReadFrom(buf)
			if err != nil {
				close(done)
				return
			}
			if n >= 240 && buf[0] == byte(dhcpv4.OpcodeBootReply) {
				offers++
			}
		}
	}()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		relay.WriteTo(reqs[i%len(reqs)], to)
	}
	sent := time.Since(start)
	<-done
	fmt.Printf("sent %d DISCOVERs in %s (%.0f/s); %d offers, %.2f%% dropped\n",
		total, sent.Round(time.Millisecond), float64(total)/sent.Seconds(), offers, 100*float64(total-offers)/float64(total))
}
