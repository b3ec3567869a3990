package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/tlstest"
)

// The TLS and admin flags' errors name the flag as typed, exit 2.
func TestServeTLSAdminFlagErrors(t *testing.T) {
	cert, key := tlstest.New(t, "pxeops").Files(t)
	src := filepath.Join("..", "..", "examples", "quickstart")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "--tls-key: required with a TLS certificate"},
		{[]string{"--tls-key", key}, "--tls-cert: required with a TLS key"},
		{[]string{"--https-addr", ":8443"}, "--https-addr :8443: HTTPS needs a TLS certificate and key"},
		{[]string{"--tls-cert", cert, "--tls-key", cert}, "--tls-cert " + cert + ": certificate and key:"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--https-url", "http://x"}, "--https-url http://x: want https://"},
		{[]string{"--admin-addr", "9090"}, "--admin-addr 9090: want host:port"},
	} {
		args := append([]string{"serve", "--source", src, "--http-addr", "127.0.0.1:0"}, tc.args...)
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}
