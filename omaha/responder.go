package omaha

import (
	"bytes"
	"cmp"
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Responder answers update_engine on PXE-booted hosts at /v1/update/.
// Such hosts update by rebooting into the image the repository pins, so
// the answer is noupdate; what they report is kept as a census: which
// machine runs which version, on which channel, last seen when.
type Responder struct {
	Log     *slog.Logger
	Metrics *Metrics
	// Policy says, per request, whether and where to forward (proxy
	// mode) and which versions the served tree pins.
	Policy func() Policy
	// Trigger starts a mirroring pass; repeated calls while one is
	// pending fold into it.
	Trigger func()
	HTTP    *http.Client
	// MaxHosts bounds the census (default 100,000); the longest silent
	// host makes room for a new one.
	MaxHosts int
	// CheckIn, when set, is told of each host's check-in: the request's
	// RemoteAddr and the OS version it runs. It must not block.
	CheckIn func(remoteAddr, version string)

	mu    sync.Mutex
	hosts map[string]*list.Element // of *Host, in recent
	// recent orders the census by last contact, the latest at the front:
	// a contact moves its host to the front and the back makes room, so a
	// request costs the same whether the census is full or not.
	recent   list.List
	versions map[string]*versionCount // by versionKey, for ImageCensus
	forwards chan struct{}            // bounds concurrent upstream forwards
	once     sync.Once
}

// Policy is the part of the served tree the responder follows.
type Policy struct {
	Proxy       bool
	Passthrough bool
	Server      string
	// Pinned maps "<channel>/<arch>" to the version the tree serves for
	// images the updater tracks.
	Pinned map[string]string
	// Sides are the versions the tree serves per image, for ImageCensus.
	Sides []Side
}

// Host is one machine in the census.
type Host struct {
	MachineID   string    `json:"machine_id"`
	Version     string    `json:"version"`
	Channel     string    `json:"channel"`
	Board       string    `json:"board,omitempty"`
	Addr        string    `json:"addr"`
	LastContact time.Time `json:"last_contact"`
	// LastEvent is "<type>/<result>" of the last event reported.
	LastEvent string `json:"last_event,omitempty"`

	series  [2]string // the gauge labels it is counted under
	version string    // the versionKey it is counted under
}

const passthroughWait = 2 * time.Second

func (rs *Responder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs.once.Do(func() { rs.forwards = make(chan struct{}, 16) })
	body, err := readBounded(http.MaxBytesReader(w, r.Body, MaxBody))
	var req *Request
	if err == nil {
		req, err = ParseRequest(bytes.NewReader(body))
	}
	if err != nil {
		rs.count("malformed")
		http.Error(w, "malformed Omaha request: "+clip(err.Error(), 256), http.StatusBadRequest) // never echo the body back
		return
	}
	rs.record(req, r.RemoteAddr)
	if rs.CheckIn != nil {
		rs.checkIn(req, r.RemoteAddr)
	}
	answer := Marshal(noUpdate(req))
	var policy Policy
	if rs.Policy != nil {
		policy = rs.Policy()
	}
	if policy.Proxy && policy.Server != "" {
		if upstream := rs.forward(policy, body, req); upstream != nil && policy.Passthrough {
			select {
			case up := <-upstream:
				if up != nil {
					answer = up
				}
			case <-time.After(passthroughWait):
			}
		}
	}
	rs.count("answered")
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write(answer)
}

// noUpdate answers every app: noupdate to update checks, ok to pings and
// events.
func noUpdate(req *Request) *Response {
	resp := &Response{Protocol: "3.0", Server: "pxeops", DayStart: &DayStart{ElapsedSeconds: strconv.Itoa(secondsToday())}}
	for _, app := range req.Apps {
		a := ResponseApp{AppID: app.AppID, Status: "ok"}
		if app.UpdateCheck != nil {
			a.UpdateCheck = &UpdateCheck{Status: "noupdate"}
		}
		if app.Ping != nil {
			a.Ping = &Ping{Status: "ok"}
		}
		for range app.Events {
			a.Events = append(a.Events, EventAnswer{Status: "ok"})
		}
		resp.Apps = append(resp.Apps, a)
	}
	return resp
}

func secondsToday() int {
	now := time.Now().UTC()
	return now.Hour()*3600 + now.Minute()*60 + now.Second()
}

// forward sends the host's request upstream in the background. The
// channel yields the upstream's answer (nil on failure) for passthrough;
// a newer version than the tree pins triggers a mirroring pass. When too
// many forwards are in flight, this one is skipped: hosts are never
// slowed by the upstream.
func (rs *Responder) forward(p Policy, body []byte, req *Request) <-chan []byte {
	select {
	case rs.forwards <- struct{}{}:
	default:
		rs.upstream("skipped")
		return nil
	}
	out := make(chan []byte, 1)
	go func() {
		defer func() { <-rs.forwards }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		raw, resp, err := rs.post(ctx, p.Server, body)
		if err != nil {
			rs.upstream("failed")
			rs.log().Warn("omaha proxy: upstream failed; the host got noupdate", "server", p.Server, "err", err)
			out <- nil
			return
		}
		rs.upstream("ok")
		out <- raw
		for _, app := range req.Apps {
			offered := resp.App(app.AppID)
			if offered == nil || offered.UpdateCheck == nil {
				continue
			}
			// Floors count too: anything newer than the pin starts a pass,
			// which asks the service itself for the target.
			target, floor, err := offered.UpdateCheck.Offered()
			v := cmp.Or(target, floor)
			if err != nil || v == "" {
				continue
			}
			pinned, tracked := p.Pinned[app.Track+"/"+archOfBoard(app.Board)]
			if tracked && CompareVersions(v, pinned) > 0 && rs.Trigger != nil {
				rs.log().Info("omaha proxy: upstream offers a newer version; starting a mirroring pass", "channel", app.Track, "pinned", pinned, "offered", v)
				rs.Trigger()
			}
		}
	}()
	return out
}

func archOfBoard(board string) string {
	if board == "arm64-usr" {
		return "arm64"
	}
	return "amd64"
}

func (rs *Responder) post(ctx context.Context, server string, body []byte) ([]byte, *Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := cmp.Or(rs.HTTP, http.DefaultClient).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, errors.New(resp.Status)
	}
	raw, err := readBounded(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := ParseResponse(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	return raw, parsed, nil
}

// record updates the census from a request.
func (rs *Responder) checkIn(req *Request, addr string) {
	for _, app := range req.Apps {
		if sameAppID(app.AppID, AppID) {
			rs.CheckIn(addr, clip(app.Version, 64))
			return
		}
	}
}

func (rs *Responder) record(req *Request, addr string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	// Taken under the lock, so the list's order and LastContact agree.
	now := time.Now().UTC()
	if rs.hosts == nil {
		rs.hosts = map[string]*list.Element{}
	}
	for _, app := range req.Apps {
		if !sameAppID(app.AppID, AppID) {
			continue
		}
		id := clip(app.MachineID, 128)
		if id == "" {
			id = "addr:" + addr
		}
		var h *Host
		if e, ok := rs.hosts[id]; ok {
			h = e.Value.(*Host)
			rs.recent.MoveToFront(e)
			rs.Metrics.leaveHost(h.series)
		} else {
			rs.makeRoom()
			h = &Host{MachineID: id}
			rs.hosts[id] = rs.recent.PushFront(h)
		}
		h.Version, h.Channel, h.Board, h.Addr, h.LastContact = clip(app.Version, 64), clip(app.Track, 64), clip(app.Board, 64), addr, now
		if n := len(app.Events); n > 0 {
			e := app.Events[n-1]
			h.LastEvent = strconv.Itoa(e.Type) + "/" + strconv.Itoa(e.Result)
		}
		h.series = rs.Metrics.joinHost(h.Version, h.Channel)
		// A host that reports the same version again does not restart the
		// time since its version was first reported.
		if key := versionKey(archOfBoard(h.Board), h.Version); key != h.version {
			rs.countVersion(h.version, -1, now)
			rs.countVersion(key, 1, now)
			h.version = key
		}
	}
}

// clip bounds what a host may make the census keep: a request is up to
// 64 KiB, and there may be 100,000 hosts.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// makeRoom drops the longest silent hosts while the census is full.
func (rs *Responder) makeRoom() {
	limit := rs.MaxHosts
	if limit <= 0 {
		limit = 100_000
	}
	for len(rs.hosts) >= limit {
		oldest := rs.recent.Remove(rs.recent.Back()).(*Host)
		delete(rs.hosts, oldest.MachineID)
		rs.Metrics.leaveHost(oldest.series)
		rs.countVersion(oldest.version, -1, time.Time{})
	}
}

// Census is the responder's part of /status.
type Census struct {
	Hosts int `json:"hosts"`
	// Versions counts hosts per "<channel> <version>".
	Versions map[string]int `json:"versions"`
	// Recent lists up to 1,000 hosts, the most recently seen first.
	Recent []Host `json:"recent"`
}

// Census returns the census.
func (rs *Responder) Census() Census {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	// Recent is [] in /status before any host, not null.
	c := Census{Hosts: len(rs.hosts), Versions: map[string]int{}, Recent: []Host{}}
	for e := rs.recent.Front(); e != nil; e = e.Next() {
		h := e.Value.(*Host)
		c.Versions[h.Channel+" "+h.Version]++
		if len(c.Recent) < 1000 {
			c.Recent = append(c.Recent, *h)
		}
	}
	return c
}

func (rs *Responder) count(outcome string) {
	if rs.Metrics != nil {
		rs.Metrics.requests.WithLabelValues(outcome).Inc()
	}
}

func (rs *Responder) upstream(outcome string) {
	if rs.Metrics != nil {
		rs.Metrics.upstream.WithLabelValues(outcome).Inc()
	}
}

func (rs *Responder) log() *slog.Logger { return cmp.Or(rs.Log, discard) }

// discard is what a nil Log means: no logging (a nil HTTP is net/http's
// default client).
var discard = slog.New(slog.DiscardHandler)
