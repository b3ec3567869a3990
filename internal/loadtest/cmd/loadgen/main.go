// Command loadgen is an open-loop HTTP/1.1 load generator for pxeops'
// benchmarks: it sends GET requests at a fixed rate over keep-alive
// connections and reports latency percentiles measured from each
// request's scheduled send time, so a stalled server cannot hide its
// queueing (no coordinated omission). It only speaks to loopback.
//
//	go run ./internal/loadtest/cmd/loadgen -rate 20000 -duration 10s -conns 16 \
//	    -addr 127.0.0.1:8080 -path '/ipxe?mac=%s' -macs 10000
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pxeops/pxeops/internal/gentree"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address (loopback only)")
	path := flag.String("path", "/ipxe?mac=%s", "request path; %s becomes a generated machine's MAC")
	macs := flag.Int("macs", 10000, "number of generated machines to spread requests over (gentree's)")
	rate := flag.Int("rate", 20000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 16, "keep-alive connections")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "loadgen: -addr must be a loopback address")
		os.Exit(2)
	}
	total := int(duration.Seconds() * float64(*rate))
	// Requests and result slots are made before the clock starts, so the
	// generator's own allocation and GC do not show up as server latency.
	reqs := make([][]byte, *macs)
	for i := range reqs {
		p := *path
		if strings.Contains(p, "%s") {
			p = fmt.Sprintf(*path, gentree.MAC(i))
		}
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + *addr + "\r\n\r\n")
	}
	tickets := make(chan time.Time, total)
	lat := make([][]time.Duration, *conns)
	errs := make([]int, *conns)
	var wg sync.WaitGroup
	for c := range *conns {
		wg.Go(func() {
			lat[c], errs[c] = worker(*addr, reqs, c, total/(*conns)*2, tickets)
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(*rate)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		tickets <- due
	}
	close(tickets)
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	nerr := 0
	for c := range *conns {
		all = append(all, lat[c]...)
		nerr += errs[c]
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	fmt.Printf("target %d req/s for %s over %d connections\n", *rate, *duration, *conns)
	fmt.Printf("sent %d, ok %d, errors %d, achieved %.0f req/s\n", total, len(all), nerr, float64(len(all))/elapsed.Seconds())
	fmt.Printf("latency from scheduled send: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1))
}

// worker sends one request per ticket on its own connection and reads
// the answer, reconnecting after an error.
func worker(addr string, reqs [][]byte, seed, expect int, tickets <-chan time.Time) (lat []time.Duration, errs int) {
	var conn net.Conn
	var r *bufio.Reader
	lat = make([]time.Duration, 0, expect)
	i := seed
	for due := range tickets {
		if conn == nil {
			var err error
			if conn, err = net.Dial("tcp", addr); err != nil {
				errs++
				continue
			}
			r = bufio.NewReaderSize(conn, 64<<10)
		}
		i = (i*7919 + 1) % len(reqs)
		if _, err := conn.Write(reqs[i]); err != nil {
			errs++
			conn.Close()
			conn = nil
			continue
		}
		status, err := readResponse(r)
		if err != nil || status != 200 {
			errs++
			if err != nil {
				conn.Close()
				conn = nil
			}
			continue
		}
		lat = append(lat, time.Since(due))
	}
	if conn != nil {
		conn.Close()
	}
	return lat, errs
}

// readResponse reads one response with a Content-Length body.
func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0') // "HTTP/1.1 200"
	length := -1
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("response without Content-Length")
	}
	_, err = r.Discard(length)
	return status, err
}
