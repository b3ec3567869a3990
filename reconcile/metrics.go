package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/render"
)

// Metrics are the reconciler's Prometheus metrics.
type Metrics struct {
	reloads     *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	info        *prometheus.GaugeVec
	groups      prometheus.Gauge
}

// NewMetrics registers the reconciler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_reloads_total", Help: "Revisions tried, by result: served, invalid (needs a human), retrying (unreadable), abandoned (a newer one came while loading).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pxeops_reload_duration_seconds", Help: "Time to load, validate and render a revision.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pxeops_last_successful_reload_timestamp_seconds", Help: "When the served snapshot was published.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pxeops_snapshot_info", Help: "The served snapshot: always 1, labelled with its revision and digest.",
		}, []string{"revision", "digest"}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pxeops_snapshot_groups", Help: "Groups in the served snapshot.",
		}),
	}
	for _, res := range []string{ResultServed, ResultInvalid, ResultRetrying} {
		m.reloads.WithLabelValues(res) // export zeros, so alerts on increase() work from the start
	}
	reg.MustRegister(m.reloads, m.duration, m.lastSuccess, m.info, m.groups)
	return m
}

func (m *Metrics) observe(a *Attempt, snap *render.Snapshot) {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues(a.Result).Inc()
	m.duration.Observe(a.DurationMS / 1000)
	if snap != nil {
		m.lastSuccess.Set(float64(a.At.UnixNano()) / 1e9)
		m.info.Reset()
		m.info.WithLabelValues(snap.Revision, snap.Digest).Set(1)
		m.groups.Set(float64(len(snap.Tree.Groups)))
	}
}
