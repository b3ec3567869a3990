package tftpserver

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	transfers *prometheus.CounterVec
	refused   *prometheus.CounterVec
	bytes     prometheus.Counter
	duration  prometheus.Histogram
	blocking  prometheus.GaugeFunc
}

// newMetrics registers the transfer metrics on reg (if not nil), and a
// gauge that reads blocking() at each scrape.
func newMetrics(reg prometheus.Registerer, blocking func() int) *metrics {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_tftp_transfers_total", Help: "TFTP transfers by outcome: success, failure (writes included), size_probe (UEFI), absent (a name firmware asks for in case it exists).",
		}, []string{"outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_tftp_refused_total", Help: "TFTP requests that got no transfer, by reason: busy (transfer limit), client_limit (per-address limit), resources (out of descriptors), bad_request (error 4: malformed request or mode other than octet/netascii), bad_packet (not a request; dropped).",
		}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pxeops_tftp_bytes_total", Help: "Bytes sent over TFTP.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pxeops_tftp_transfer_duration_seconds", Help: "Duration of successful TFTP transfers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		blocking: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pxeops_tftp_blocking_transfers",
			Help: "TFTP transfers waiting for ACKs in blocking reads now (at most 128; beyond, transfers use Go's netpoller).",
		}, func() float64 { return float64(blocking()) }),
	}
	if reg != nil {
		reg.MustRegister(m.transfers, m.refused, m.bytes, m.duration, m.blocking)
	}
	return m
}
