package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/internal/logtest"
)

// listen serves h as pxeops serve does (Server's bounds) on a loopback
// port and returns its address.
func listen(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := Server("", h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fetch GETs target from addr over a fresh connection.
func fetch(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + target)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(body)
}

// slowPost starts a POST whose body of n bytes is sent one byte every
// gap (from local, when set) and returns the connection.
func slowPost(t *testing.T, addr, local, path string, n int, gap time.Duration) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: pxe.test\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n<", path, n)
	must(t, err)
	go func() {
		for range n - 1 {
			time.Sleep(gap)
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	return c
}

// answer reads the status line of c's response, waiting at most 5 s.
func answer(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// closed reads c's whole answer, waiting at most 5 s for the server to
// close the connection, and returns its status line. A reset counts as
// closed: the client may still be sending when the server closes.
func closed(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	line, _, _ := strings.Cut(string(all), "\r\n")
	return line, err
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func waitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); gauge(t, reg, name) != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, gauge(t, reg, name), want)
		}
	}
}

// omahaStub stands in for the responder: it reads the body and answers.
var omahaStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "<response/>")
})

// Bodies sent a byte at a time are cut at the body deadline, however
// many, while /ipxe goes on answering.
func TestSlowBodiesCutAtDeadline(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{Omaha: omahaStub, Registry: reg, BodyTimeout: time.Second, MaxBodiesPerClient: 64})
	must(t, err)
	addr := listen(t, h)
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = slowPost(t, addr, "", "/v1/update/", 1000, 200*time.Millisecond) // 200 s to send whole
	}
	// A body no handler of ours sees (the mux redirects //x) has the
	// deadline too: net/http would wait for it (discarding it) before
	// answering.
	stray := slowPost(t, addr, "", "//x", 1000, 200*time.Millisecond)
	waitGauge(t, reg, "pxeops_http_bodies_reading", n)
	if code, body := fetch(t, addr, "/ipxe?mac=52:54:00:00:00:01"); code != 200 || !strings.HasPrefix(body, "#!ipxe") {
		t.Errorf("/ipxe during %d slow bodies: %d %q", n, code, body)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			if line, err := closed(c); line != "HTTP/1.1 408 Request Timeout" || err != nil {
				t.Errorf("slow body %d: %q, %v; want 408 and the connection closed at the 1 s deadline", i, line, err)
			}
		})
	}
	if line, err := closed(stray); line != "HTTP/1.1 307 Temporary Redirect" || err != nil {
		t.Errorf("slow body to //x: %q, %v; want the redirect and the connection closed at the 1 s deadline", line, err)
	}
	wg.Wait()
	waitGauge(t, reg, "pxeops_http_bodies_reading", 0)
}

// One address may have a few bodies in flight, everyone together more;
// past either, a POST is refused at once, and /ipxe is not affected.
func TestBodyCaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{Omaha: omahaStub, Registry: reg, MaxBodiesPerClient: 2, MaxBodies: 3})
	must(t, err)
	addr := listen(t, h)
	slowPost(t, addr, "127.0.0.1", "/v1/update/", 100, time.Second)
	slowPost(t, addr, "127.0.0.1", "/v1/update/", 100, time.Second)
	slowPost(t, addr, "127.0.0.2", "/v1/update/", 100, time.Second)
	waitGauge(t, reg, "pxeops_http_bodies_reading", 3)
	for _, c := range []struct{ local, want string }{
		{"127.0.0.1", "HTTP/1.1 429 Too Many Requests"},
		{"127.0.0.3", "HTTP/1.1 503 Service Unavailable"},
	} {
		line, err := answer(slowPost(t, addr, c.local, "/v1/update/", 100, time.Second))
		if line != c.want {
			t.Errorf("a POST from %s past the caps: %q, %v; want %q", c.local, line, err, c.want)
		}
	}
	if code, _ := fetch(t, addr, "/ipxe?mac=52:54:00:00:00:01"); code != 200 {
		t.Errorf("/ipxe with the body caps full: %d", code)
	}
}

// A request with a body to an endpoint that reads none is refused, and
// its connection closed, rather than waited for.
func TestNoBodyOnGet(t *testing.T) {
	h, err := New(fixedSnapshots{testSnapshot(t)}, Options{})
	must(t, err)
	c, err := net.Dial("tcp", listen(t, h))
	must(t, err)
	defer c.Close()
	fmt.Fprintf(c, "GET /ipxe?mac=52:54:00:00:00:01 HTTP/1.1\r\nHost: pxe.test\r\nContent-Length: 1000\r\n\r\nx")
	if line, err := closed(c); line != "HTTP/1.1 400 Bad Request" || err != nil {
		t.Errorf("GET with a body: %q, %v", line, err)
	}
}

// Boot queries are parsed whole or refused: never served as the part that
// parsed, which in this tree would be the default group's disk wipe.
func TestStrictBootQueries(t *testing.T) {
	h, err := New(fixedSnapshots{testSnapshotWithDefault(t)}, Options{ServerURL: "http://pxe.test"})
	must(t, err)
	addr := listen(t, h)
	const mac = "mac=52:54:00:00:00:01"
	var over64 strings.Builder
	for i := range 64 {
		fmt.Fprintf(&over64, "l%d=v&", i)
	}
	for _, c := range []struct {
		target string
		code   int
		want   string
	}{
		{"/ipxe?" + mac + ";x=1", 400, "bad query: invalid semicolon separator in query"},
		{"/config?" + mac + ";x=1", 400, "semicolon"},
		{"/metadata?x=1;" + mac, 400, "semicolon"},
		{"/ipxe?" + strings.Repeat("x&", 10000) + mac, 400, "bad query: 10001 parameters, at most 64"},
		{"/ipxe?" + over64.String() + mac, 400, "65 parameters, at most 64"},
		{"/ipxe?" + mac + "&" + mac, 400, "bad query: mac: given 2 times"},
		{"/ipxe?" + mac + "&x=%zz", 400, `invalid URL escape "%zz"`},
		{"/ipxe?hostname=" + strings.Repeat("a", 9000), 400, "bad query: query of 9009 bytes, at most 8192"},
		// still served: the machine and the default group
		{"/ipxe?" + mac, 200, "host=\n"},
		{"/ipxe?mac=52:54:00:00:00:77", 200, "wipe-disks=yes"},
	} {
		code, body := fetch(t, addr, c.target)
		if code != c.code || !strings.Contains(body, c.want) || (c.code != 200 && strings.Contains(body, "wipe")) {
			t.Errorf("GET %.80s = %d %.200q; want %d containing %q", c.target, code, body, c.code, c.want)
		}
	}
}

// An answer quotes request input clipped: a 60 KB value does not come
// back whole.
func TestBadInputNotEchoed(t *testing.T) {
	h, err := New(fixedSnapshots{testSnapshotWithDefault(t)}, Options{})
	must(t, err)
	addr := listen(t, h)
	big := strings.Repeat("x", 60000)
	for _, target := range []string{
		"/pixiecore/v1/boot/" + big,
		"/ipxe?mac=" + big,
		"/ipxe?hostname=" + big[:8000] + "!",
		"/ipxe?" + big[:8000] + "=v",
		"/ipxe?rack=" + big[:8000],
	} {
		code, body := fetch(t, addr, target)
		if code/100 != 4 || len(body) > 300 {
			t.Errorf("GET %.40s… (%d bytes) = %d with %d bytes: %.300q", target, len(target), code, len(body), body)
		}
	}
}

func TestWebhookRefusalsLoggedOncePerInterval(t *testing.T) {
	var logs logtest.Buffer
	h, err := New(fixedSnapshots{}, Options{WebhookSecret: []byte("secret"), Trigger: func() {}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	addr := listen(t, h)
	for range 20 {
		resp, err := http.Post("http://"+addr+"/hooks/git", "application/json", strings.NewReader("{}"))
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unsigned webhook: %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), "webhook refused"); n != 1 {
		t.Errorf("20 refused webhooks logged %d times, want once:\n%s", n, logs.String())
	}
}

// FuzzBootQuery: whatever the query, /ipxe in a tree with a default group
// answers 200 only for a query that parses whole with no key twice, and
// any refusal is short.
func FuzzBootQuery(f *testing.F) {
	for _, s := range []string{
		// what /boot.ipxe makes iPXE send
		"mac=52-54-00-12-34-56&uuid=4c4c4544-0042-3510-8050-b4c04f4d3232&hostname=&serial=&arch=x86_64",
		"mac=52-54-00-00-00-01&uuid=&hostname=node1&serial=To%20be%20filled%20by%20O.E.M.&arch=i386",
		"mac=52:54:00:00:00:01;x=1",
		"mac=52:54:00:00:00:01&mac=52:54:00:00:00:01",
		"mac=52:54:00:00:00:01&rack=r1&x=%zz",
		"",
	} {
		f.Add(s)
	}
	h, err := New(fixedSnapshots{testSnapshotWithDefault(f)}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest("GET", "/ipxe", nil)
		req.URL.RawQuery = raw
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		q, perr := url.ParseQuery(raw)
		repeated := false
		for _, v := range q {
			repeated = repeated || len(v) > 1
		}
		switch w.Code {
		case 200:
			if perr != nil || repeated {
				t.Fatalf("%q (%v, repeated %v) served: %q", raw, perr, repeated, w.Body.String())
			}
		case 400:
			if w.Body.Len() > 1024 {
				t.Fatalf("%q: refusal of %d bytes", raw, w.Body.Len())
			}
		default:
			t.Fatalf("%q: %d %q", raw, w.Code, w.Body.String())
		}
	})
}
