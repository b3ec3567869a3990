package updater

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/omaha"
)

// Metrics are the updater's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	passes    *prometheus.CounterVec
	available *prometheus.GaugeVec
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_omaha_image_checks_total", Help: "Updater checks per image, by resulting state.",
		}, []string{"image", "state"}),
		available: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pxeops_omaha_image_update_pending", Help: "1 when the update service offers a newer version than the served tree pins.",
		}, []string{"image"}),
	}
	reg.MustRegister(m.passes, m.available)
	return m
}

func (m *Metrics) observe(image string, st ImageStatus) {
	if m == nil {
		return
	}
	m.passes.WithLabelValues(image, st.State).Inc()
	pending := 0.0
	if st.Latest != "" && omaha.CompareVersions(st.Latest, st.Current) > 0 {
		pending = 1
	}
	m.available.WithLabelValues(image).Set(pending)
}
