package httpserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the Options bounding request bodies.
const (
	defaultBodyTimeout        = 10 * time.Second
	defaultMaxBodiesPerClient = 16
	defaultMaxBodies          = 256
	defaultOmahaMaxBody       = 64 << 10 // update_engine's requests are a few KiB
)

// bodyGate counts the request bodies being read, per client address and
// in all. Only POST endpoints pass through it, never the boot path.
type bodyGate struct {
	perClient, max int
	reading        prometheus.Gauge

	mu      sync.Mutex
	clients map[string]int
	total   int
}

// enter takes a place for reading one body from host; it returns the
// status to refuse with when there is none.
func (g *bodyGate) enter(host string) (code int, msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.clients[host] >= g.perClient {
		return http.StatusTooManyRequests, fmt.Sprintf("%d request bodies already being read from %s; retry later", g.perClient, host)
	}
	if g.total >= g.max {
		return http.StatusServiceUnavailable, fmt.Sprintf("%d request bodies already being read; retry later", g.max)
	}
	g.clients[host]++
	g.total++
	g.reading.Inc()
	return 0, ""
}

func (g *bodyGate) leave(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.clients[host]--; g.clients[host] == 0 {
		delete(g.clients, host)
	}
	g.total--
	g.reading.Dec()
}

// withBody wraps a POST endpoint: it reads the body whole, at most limit
// bytes within timeout, before h runs, so h never waits on a slow client
// and gets the body from memory. The deadline is the connection's read
// deadline (http.ResponseController), so a client sending one byte at a
// time is cut at it, not at every read.
func (s *server) withBody(limit int64, timeout time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if code, msg := s.bodies.enter(host); code != 0 {
			refuse(w, code, msg)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(timeout)) // fails only where there is no connection (tests' recorders)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		s.bodies.leave(host)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			refuse(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			refuse(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s", timeout))
			return
		case err != nil:
			refuse(w, http.StatusBadRequest, "cannot read the request body")
			return
		}
		// Read whole: net/http's background read that follows must not
		// time out and cancel the request while h answers.
		rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}
}

// noBody wraps an endpoint that reads no body: net/http would wait for an
// unread body (it discards up to 256 KiB before reusing the connection),
// so a request with one is refused.
func noBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			refuse(w, http.StatusBadRequest, "this endpoint takes no request body")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bodyDeadline is the outermost handler: any request with a body gets
// the body deadline at once, whoever answers it (a POST to an unknown
// path, the mux's redirects), so no unread body holds a connection for
// longer. Requests without one, the boot path, pass by one comparison.
func bodyDeadline(timeout time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers a request whose body is not read (or no longer) and
// closes the connection after it, without waiting for the rest.
func refuse(w http.ResponseWriter, code int, msg string) {
	http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}
