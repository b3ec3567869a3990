package tftpserver

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
	duration  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_tftp_transfers_total", Help: "TFTP transfers by outcome: success, failure (writes included), size_probe (UEFI).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pxeops_tftp_bytes_total", Help: "Bytes sent over TFTP.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pxeops_tftp_transfer_duration_seconds", Help: "Duration of successful TFTP transfers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.transfers, m.bytes, m.duration)
	}
	return m
}
