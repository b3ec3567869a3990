package httpserver

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bodies   prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pxeops_http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pxeops_http_request_duration_seconds", Help: "Time to answer an HTTP request, by endpoint.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1, 10, 60},
		}, []string{"endpoint"}),
		bodies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pxeops_http_bodies_reading", Help: "Request bodies (POST /v1/update/, /hooks/git) being read now.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.bodies)
	return m
}

// commonCodes get their counters looked up once, not on every request.
var commonCodes = []int{200, 206, 304, 400, 404, 500, 503}

// instrument counts and times every request of one endpoint.
func (m *httpMetrics) instrument(endpoint string, h http.Handler) http.Handler {
	latency := m.latency.WithLabelValues(endpoint)
	counters := map[int]prometheus.Counter{}
	for _, code := range commonCodes {
		counters[code] = m.requests.WithLabelValues(endpoint, strconv.Itoa(code))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		latency.Observe(time.Since(start).Seconds())
		if c, ok := counters[rec.code]; ok {
			c.Inc()
		} else {
			m.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc()
		}
	})
}

// recorder notes the status code. It passes ReadFrom through, or io.Copy
// would fall back to a userspace copy and assets would lose sendfile.
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(r.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
