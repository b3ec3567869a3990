package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
	"github.com/pxeops/pxeops/internal/tlstest"
	"github.com/pxeops/pxeops/source"
)

// tlsFiles writes a fresh pair and returns its files.
func tlsFiles(t *testing.T) (certFile, keyFile string, p tlstest.Pair) {
	p = tlstest.New(t, "pxeops")
	certFile, keyFile = p.Files(t)
	return certFile, keyFile, p
}

func TestValidateTLSAdmin(t *testing.T) {
	cert, key, _ := tlsFiles(t)
	other, otherKey, _ := tlsFiles(t)
	base := func() Config {
		return Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", ServerURL: "http://10.0.0.1:8080"}
	}
	on := func(c *Config) { c.TLSCert, c.TLSKey = cert, key }
	for _, tc := range []struct {
		name       string
		edit       func(*Config)
		field, msg string // both empty: valid
		httpsURL   string // want, when valid
	}{
		{"off", func(*Config) {}, "", "", ""},
		{"on: default address and URL", on, "", "", "https://10.0.0.1:8443"},
		{"on: own address", func(c *Config) { on(c); c.HTTPSAddr = "127.0.0.1:9443" }, "", "", "https://10.0.0.1:9443"},
		{"on: own URL", func(c *Config) { on(c); c.HTTPSURL = "https://boot.example/pxe" }, "", "", "https://boot.example/pxe"},
		{"cert alone", func(c *Config) { c.TLSCert = cert }, "TLSKey", "required with a TLS certificate", ""},
		{"key alone", func(c *Config) { c.TLSKey = key }, "TLSCert", "required with a TLS key", ""},
		{"https addr without TLS", func(c *Config) { c.HTTPSAddr = ":8443" }, "HTTPSAddr", "needs a TLS certificate and key", ""},
		{"https url without TLS", func(c *Config) { c.HTTPSURL = "https://x" }, "HTTPSURL", "nothing serves HTTPS", ""},
		{"mismatched pair", func(c *Config) { c.TLSCert, c.TLSKey = cert, otherKey }, "TLSCert", "does not match", ""},
		{"missing key file", func(c *Config) { c.TLSCert, c.TLSKey = other, filepath.Join(t.TempDir(), "none") }, "TLSKey", "no such file", ""},
		{"key file is a directory", func(c *Config) { c.TLSCert, c.TLSKey = cert, t.TempDir() }, "TLSKey", "directory", ""},
		{"https port alone", func(c *Config) { on(c); c.HTTPSAddr = "8443" }, "HTTPSAddr", "want host:port, e.g. :8443", ""},
		{"https on the http port", func(c *Config) { on(c); c.HTTPSAddr = "0.0.0.0:8080" }, "HTTPSAddr", "the HTTP listener has that port", ""},
		{"https on the http port, other host", func(c *Config) { on(c); c.HTTPAddr, c.HTTPSAddr = "127.0.0.1:8080", "127.0.0.2:8080" }, "", "", "https://10.0.0.1:8080"},
		{"http url as https url", func(c *Config) { on(c); c.HTTPSURL = "http://boot.example" }, "HTTPSURL", "want https://", ""},
		{"https url with query", func(c *Config) { on(c); c.HTTPSURL = "https://boot.example/?a=b" }, "HTTPSURL", "without user, query or fragment", ""},
		{"admin", func(c *Config) { c.AdminAddr = "127.0.0.1:9090" }, "", "", ""},
		{"admin port alone", func(c *Config) { c.AdminAddr = "9090" }, "AdminAddr", "want host:port, e.g. 127.0.0.1:9090", ""},
		{"admin on the http port", func(c *Config) { c.AdminAddr = "127.0.0.1:8080" }, "AdminAddr", "a boot listener has that port", ""},
		{"admin on the https port", func(c *Config) { on(c); c.AdminAddr = "[::]:8443" }, "AdminAddr", "a boot listener has that port", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			if checkValidate(t, &c, tc.field, tc.msg) && c.HTTPSURL != tc.httpsURL {
				t.Errorf("HTTPSURL = %q, want %q", c.HTTPSURL, tc.httpsURL)
			}
		})
	}
}

// ignitionFleet is one machine whose kernel fetches its Ignition config
// from {{ .ConfigServerURL }}.
func ignitionFleet(t *testing.T) *source.Dir {
	return fleetOf(t, map[string]string{
		"profiles/p.yaml": "kernel: /assets/k\nargs: [\"ignition.config.url={{ .ConfigServerURL }}/ignition?mac={{ .MAC }}\"]\nconfig: {template: t.ign, type: ignition}\n",
		"templates/t.ign": "ignition: {version: 3.4.0}\n",
		"groups/g.yaml":   "profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n",
	})
}

func getWith(t *testing.T, client *http.Client, url string) (int, string, *tls.ConnectionState) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.TLS
}

// HTTP and HTTPS side by side: the same answers on both, the script
// (served over either, to iPXE over HTTP) sends the OS's config fetch to
// HTTPS, which serves it; a rotated certificate is served on the next
// connection; /status and /metrics describe the certificate; an HTTPS
// listener that dies ends Run like any other.
func TestHTTPSBesideHTTP(t *testing.T) {
	certFile, keyFile, a := tlsFiles(t)
	b := tlstest.New(t, "rotated")
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r := start(t, Config{Source: "fleet", Tree: ignitionFleet(t),
		TLSAdmin: TLSAdmin{TLSCert: certFile, TLSKey: keyFile, HTTPSListener: hl}})
	httpsURL := "https://" + hl.Addr().String()
	client := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	}

	code, viaHTTP := r.get("/ipxe?mac=52:54:00:00:00:01")
	want := "ignition.config.url=" + httpsURL + "/ignition?mac=52:54:00:00:00:01"
	if code != 200 || !strings.Contains(viaHTTP, want) || !strings.Contains(viaHTTP, r.url+"/assets/k") {
		t.Fatalf("/ipxe over HTTP = %d %q, want the kernel over HTTP and %q", code, viaHTTP, want)
	}
	code, viaHTTPS, _ := getWith(t, client(tlstest.Pool(a)), httpsURL+"/ipxe?mac=52:54:00:00:00:01")
	if code != 200 || viaHTTPS != viaHTTP {
		t.Errorf("/ipxe over HTTPS = %d %q, want what HTTP serves", code, viaHTTPS)
	}
	code, cfg, _ := getWith(t, client(tlstest.Pool(a)), httpsURL+"/ignition?mac=52:54:00:00:00:01")
	if code != 200 || !strings.Contains(cfg, `"version":"3.4.0"`) {
		t.Errorf("the config URL in the script = %d %q", code, cfg)
	}
	if _, err := client(nil).Get(httpsURL + "/healthz"); err == nil {
		t.Error("a client that does not trust the certificate got an answer")
	}

	b.Write(t, certFile, keyFile)
	_, _, st := getWith(t, client(tlstest.Pool(a, b)), httpsURL+"/healthz")
	if got := st.PeerCertificates[0]; !got.Equal(b.Cert) {
		t.Errorf("after rotating the files, HTTPS served %q, want the new certificate", got.Subject.CommonName)
	}
	_, body := r.get("/status")
	var status struct {
		TLS struct{ Subject, Error string }
	}
	must(t, json.Unmarshal([]byte(body), &status))
	if status.TLS.Subject != "CN=rotated" || status.TLS.Error != "" {
		t.Errorf("/status tls = %+v, want the rotated certificate", status.TLS)
	}
	if _, m := r.get("/metrics"); !strings.Contains(m, "pxeops_tls_certificate_expiry_timestamp_seconds ") {
		t.Error("/metrics lacks the certificate's expiry")
	}
	if !strings.Contains(r.logs.String(), "msg=listening component=https addr="+hl.Addr().String()) {
		t.Errorf("the HTTPS listener is not logged:\n%s", r.logs)
	}
	stops(t, r, "https", func() { hl.Close() })
}

// With an admin listener, the boot port answers 404 for /status,
// /metrics and /hooks/git, the admin port serves them, and an admin
// listener that dies ends Run like any other.
func TestAdminListener(t *testing.T) {
	al, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	secret := "0123456789abcdef-secret"
	r := start(t, Config{Source: "fleet", Tree: fleet(t), WebhookSecret: []byte(secret),
		TLSAdmin: TLSAdmin{AdminListener: al}})
	client := &http.Client{Timeout: 5 * time.Second} // a port nobody serves must fail, not hang
	do := func(method, url string) int {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("{}")
		}
		req, _ := http.NewRequest(method, url, body)
		req.Header.Set("X-Gitlab-Token", secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		url                        string
		status, ipxe, hook, readyz int
		name                       string
	}{
		{r.url, 404, 200, 404, 200, "boot"},
		{"http://" + al.Addr().String(), 200, 404, 202, 200, "admin"},
	} {
		for path, want := range map[string]int{"/status": c.status, "/metrics": c.status, "/ipxe?mac=52:54:00:00:00:01": c.ipxe, "/readyz": c.readyz} {
			if code := do("GET", c.url+path); code != want {
				t.Errorf("%s port: GET %s = %d, want %d", c.name, path, code, want)
			}
		}
		if code := do("POST", c.url+"/hooks/git"); code != c.hook {
			t.Errorf("%s port: POST /hooks/git = %d, want %d", c.name, code, c.hook)
		}
	}
	if !strings.Contains(r.logs.String(), "msg=listening component=admin addr="+al.Addr().String()) {
		t.Errorf("the admin listener is not logged:\n%s", r.logs)
	}
	stops(t, r, "admin", func() { al.Close() })
}

// The flags' files are checked at start with safefile: a key that is a
// named pipe is refused, never waited on.
func TestTLSKeyFIFORefused(t *testing.T) {
	cert, _, _ := tlsFiles(t)
	fifo := filepath.Join(t.TempDir(), "key")
	fifotest.Mkfifo(t, fifo)
	c := Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", TLSAdmin: TLSAdmin{TLSCert: cert, TLSKey: fifo}}
	fifotest.Returns(t, "Validate with a FIFO as key", func() {
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "TLSKey" || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("Validate = %v, want TLSKey refused as a named pipe", err)
		}
	})
}
