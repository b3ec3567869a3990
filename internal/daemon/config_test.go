package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Validate refuses what cannot work with the field and the fix, and
// fills in what ProxyDHCP implies; no sockets are opened.
func TestValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	ipxe := ipxeDir(t)
	base := func() Config {
		return Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", IPXEDir: ipxe, BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"}
	}
	git := func(stateDir string) func(*Config) {
		return func(c *Config) { c.Source, c.StateDir = "https://git.example/fleet.git", stateDir }
	}
	for _, tc := range []struct {
		name       string
		edit       func(*Config)
		field, msg string // want a FieldError for field whose text contains msg; both empty: valid
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"port alone", func(c *Config) { c.HTTPAddr = "8080" }, "HTTPAddr", "HTTPAddr 8080: want host:port, e.g. :8080"},
		{"empty http", func(c *Config) { c.HTTPAddr = "" }, "HTTPAddr", "want host:port"},
		{"port out of range", func(c *Config) { c.HTTPAddr = ":80800" }, "HTTPAddr", `port "80800": want a number up to 65535`},
		{"named port", func(c *Config) { c.HTTPAddr = "localhost:http" }, "HTTPAddr", "want a number"},
		{"tftp port alone", func(c *Config) { c.TFTPAddr = "69" }, "TFTPAddr", "TFTPAddr 69: want host:port, e.g. :69"},
		{"proxy without interface", func(c *Config) { c.ProxyDHCP = true }, "Interface", "required for ProxyDHCP"},
		{"no such interface", func(c *Config) { c.ProxyDHCP, c.Interface = true, "pxeops-none0" }, "Interface", "Interface pxeops-none0: "},
		{"proxy binary missing", func(c *Config) { c.ProxyDHCP, c.Interface, c.EFIBinary = true, "lo", "ipxe.efi" }, "", "ipxe.efi missing"},
		{"ipxe dir missing", func(c *Config) { c.TFTPAddr, c.IPXEDir = ":69", filepath.Join(ipxe, "none") }, "", "--ipxe-dir"},
		{"assets missing", func(c *Config) { c.AssetsDir = filepath.Join(ipxe, "none") }, "AssetsDir", "no such file"},
		{"git state dir", git(filepath.Join(t.TempDir(), "new", "state")), "", ""},
		{"git state dir empty", git(""), "StateDir", "required for a git source"},
		{"git state dir relative", git(".pxeops-state"), "StateDir", "StateDir .pxeops-state: want an absolute path"},
		{"git state dir under a file", git(filepath.Join(file, "sub")), "StateDir", "cannot be created: mkdir " + file + ": not a directory"},
		{"directory needs no state dir", func(c *Config) { c.StateDir = "" }, "", ""},
		{"directory state dir relative", func(c *Config) { c.StateDir = "relative" }, "StateDir", "StateDir relative: want an absolute path"},
		{"directory state dir", func(c *Config) { c.StateDir = filepath.Join(t.TempDir(), "state") }, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			checkValidate(t, &c, tc.field, tc.msg)
		})
	}
}

// checkValidate runs c.Validate and wants a FieldError for field whose
// text contains msg; both empty: valid. It reports whether c is valid.
func checkValidate(t *testing.T, c *Config, field, msg string) bool {
	t.Helper()
	err := c.Validate()
	var fe *FieldError
	switch {
	case msg == "" && err != nil:
		t.Errorf("Validate = %v, want nil", err)
	case msg != "" && (err == nil || !strings.Contains(err.Error(), msg)):
		t.Errorf("Validate = %v, want one containing %q", err, msg)
	case field != "" && (!errors.As(err, &fe) || fe.Field != field):
		t.Errorf("Validate = %#v, want a FieldError for %s", err, field)
	}
	return err == nil
}

// ProxyDHCP turns TFTP on at the interface's address, port 69, and
// points machines at the interface's address; an explicit address is
// kept, and one without a host gets the interface's.
func TestValidateProxyDHCPDefaults(t *testing.T) {
	c := Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8081", ProxyDHCP: true, Interface: "lo",
		IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"}
	must(t, c.Validate())
	if c.TFTPAddr != "127.0.0.1:69" || c.ServerURL != "http://127.0.0.1:8081" || !c.serverIP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("tftp %q, server url %q, ip %v", c.TFTPAddr, c.ServerURL, c.serverIP)
	}
	for addr, want := range map[string]string{":6969": "127.0.0.1:6969", "0.0.0.0:69": "0.0.0.0:69", "127.0.0.2:69": "127.0.0.2:69"} {
		c := Config{Source: "dir", Tree: fleet(t), HTTPAddr: ":8080", Interface: "lo", TFTPAddr: addr, IPXEDir: ipxeDir(t), ServerURL: "http://pxe.test"}
		must(t, c.Validate())
		if c.TFTPAddr != want || c.ServerURL != "http://pxe.test" {
			t.Errorf("--tftp-addr %s: %q (want %q), server url %q", addr, c.TFTPAddr, want, c.ServerURL)
		}
	}
}
