package omaha

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the responder's Prometheus series (the updater has its
// own). A nil *Metrics records nothing.
type Metrics struct {
	hosts    *prometheus.GaugeVec
	requests *prometheus.CounterVec
	upstream *prometheus.CounterVec

	mu         sync.Mutex
	hostCounts map[[2]string]int
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hostCounts: map[[2]string]int{},
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pxeops_omaha_hosts", Help: "Hosts that reported to the responder, by version and channel.",
		}, []string{"version", "channel"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_omaha_requests_total", Help: "Requests to the Omaha responder, by outcome.",
		}, []string{"outcome"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_omaha_upstream_total", Help: "Proxy-mode forwards to the upstream service, by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.hosts, m.requests, m.upstream)
	return m
}

// maxHostSeries bounds the census gauge's label pairs: versions and
// channels come from the network.
const maxHostSeries = 256

// joinHost counts a host under its version and channel and returns the
// label pair it went to, for leaveHost. Hosts report their own version
// and channel, so only well-formed values become labels, at most
// maxHostSeries pairs (the rest count under "other"; malformed ones under
// "invalid"), and a pair no host reports any more is dropped.
func (m *Metrics) joinHost(version, channel string) [2]string {
	if m == nil {
		return [2]string{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !validVersion(version) || !validVersion(channel) {
		version, channel = "invalid", "invalid"
	}
	key := [2]string{version, channel}
	if _, seen := m.hostCounts[key]; !seen && len(m.hostCounts) >= maxHostSeries && version != "invalid" {
		key = [2]string{"other", "other"}
	}
	m.hostCounts[key]++
	m.hosts.WithLabelValues(key[0], key[1]).Set(float64(m.hostCounts[key]))
	return key
}

// leaveHost uncounts a host from the pair joinHost gave it.
func (m *Metrics) leaveHost(key [2]string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hostCounts[key]--; m.hostCounts[key] > 0 {
		m.hosts.WithLabelValues(key[0], key[1]).Set(float64(m.hostCounts[key]))
		return
	}
	delete(m.hostCounts, key)
	m.hosts.DeleteLabelValues(key[0], key[1])
}
