package httpserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Timeline is told of boot answers, /boot.ipxe, /assets/ downloads and
// machines no group matches, and answers the admin's /v1/machines and
// /v1/discovered (timeline.Recorder; a wrapper may add the machines'
// durable state to what it returns).
type Timeline interface {
	Boot(mac string, remote netip.Addr, endpoint string, snap *render.Snapshot, g *render.Group)
	BootIPXE(remote netip.Addr)
	Asset(remote netip.Addr, path string, bytes int64, complete bool)
	Unmatched(timeline.Client)
	Installed(mac string, remote netip.Addr)
	Machines() []timeline.Machine
	Machine(mac string) (timeline.Machine, bool)
	Discovered() []timeline.Discovered
}

// remoteIP is the request's peer address; invalid when RemoteAddr is
// not an address (a test's request).
func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// noteUnmatched records a boot request no group matched (an /ipxe or
// /grub 404) as an unmatched client, by the MAC of its query.
func (s *server) noteUnmatched(m *render.Machine) {
	mac, ok := timeline.ParseMAC(m.MAC)
	if !ok {
		return
	}
	s.opts.Timeline.Unmatched(timeline.Client{MAC: mac, UUID: m.UUID, Arch: m.Arch})
}

// recordAssets wraps the /assets/ handler: each download is recorded
// with the bytes sent and whether that was all of what was served.
func (s *server) recordAssets(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
		h(cw, r)
		if r.Method != http.MethodGet || (cw.code != http.StatusOK && cw.code != http.StatusPartialContent) {
			return
		}
		complete := r.Context().Err() == nil // a multipart range has no length to compare with
		if want, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil {
			complete = cw.n == want
		}
		s.opts.Timeline.Asset(remoteIP(r), r.URL.Path, cw.n, complete)
	}
}

// countingWriter counts the body bytes written. It passes ReadFrom
// through, so assets keep sendfile.
type countingWriter struct {
	http.ResponseWriter
	n           int64
	code        int
	wroteHeader bool
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.wroteHeader {
		c.code, c.wroteHeader = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(c.ResponseWriter, src)
	}
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// registerTimeline adds the timeline's endpoints to the admin mux.
func (s *server) registerTimeline(handle func(pattern, endpoint string, h http.HandlerFunc)) {
	tl := s.opts.Timeline
	if tl == nil {
		return
	}
	handle("GET /v1/machines", "machines", func(w http.ResponseWriter, r *http.Request) {
		ms := nonNil(tl.Machines())
		for i := range ms {
			s.addState(&ms[i])
		}
		writeJSON(w, http.StatusOK, struct {
			Machines []timeline.Machine `json:"machines"`
		}{ms})
	})
	handle("GET /v1/machines/{mac}", "machines", func(w http.ResponseWriter, r *http.Request) {
		mac, err := render.ParseMAC(r.PathValue("mac"))
		if err != nil {
			http.Error(w, "bad MAC in path: "+err.Error(), http.StatusBadRequest)
			return
		}
		m, ok := tl.Machine(mac)
		if !ok {
			m.MAC = mac
		}
		// A machine installed before this process started has a
		// state and no boot recorded yet: its state is still the answer.
		if !s.addState(&m) && !ok {
			http.Error(w, "no boot of "+mac+" recorded (since pxeops started, within the last machines kept) and no state kept", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, m)
	})
	handle("GET /v1/discovered", "discovered", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Machines []timeline.Discovered `json:"machines"`
		}{nonNil(tl.Discovered())})
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// addState puts the machine's durable state (installed, when, by which
// revision) beside its timeline; false when none is kept for it.
func (s *server) addState(m *timeline.Machine) bool {
	if s.opts.Machines == nil {
		return false
	}
	st, ok := s.opts.Machines.Get(m.MAC)
	if ok {
		m.State = st
	}
	return ok
}
