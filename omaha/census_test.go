package omaha

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func censusRequest(id, version string) *Request {
	return &Request{Apps: []RequestApp{{AppID: AppID, MachineID: id, Version: version, Track: "stable", Board: "amd64-usr"}}}
}

// BenchmarkRecordAtCap is one update check from a host the census has not
// seen while it is full: every request past the cap evicts one host.
func BenchmarkRecordAtCap(b *testing.B) {
	const hosts = 100_000
	rs := &Responder{Metrics: NewMetrics(prometheus.NewRegistry())}
	for i := range hosts {
		rs.record(censusRequest("m"+strconv.Itoa(i), "3975.2.0"), "192.0.2.1:1234")
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rs.record(censusRequest("new"+strconv.Itoa(i), "4081.2.0"), "192.0.2.1:1234")
	}
	b.StopTimer()
	if n := len(rs.hosts); n != hosts {
		b.Fatalf("census holds %d hosts", n)
	}
}
