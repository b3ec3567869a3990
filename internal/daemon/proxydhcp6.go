package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/serve/proxydhcp6"
	"github.com/pxeops/pxeops/serve/timeline"
)

// ProxyDHCP6 is its own switch (--proxy-dhcp6), not implied by
// ProxyDHCP on an interface that has IPv6: a site whose DHCPv6 server
// already hands out boot files would get two answers, and EDK2 tries
// IPv6 PXE after IPv4 on every boot, so turning it on changes what
// machines do.

// proxy6 is what Validate finds out for ProxyDHCP6.
type proxy6 struct {
	ip        netip.Addr       // Interface's global or ULA address
	mac       net.HardwareAddr // Interface's MAC: the server DUID
	serverURL string           // ServerURL as IPv6 clients reach it
	// lookup finds ip and mac; tests replace it (lo has neither).
	lookup func(string) (netip.Addr, net.HardwareAddr, error)
}

// validateProxyDHCP6 fills in proxy6 and what ProxyDHCP6 implies: TFTP
// on (":69", which tftpHost widens), and a server URL.
func (c *Config) validateProxyDHCP6() error {
	if !c.ProxyDHCP6 {
		return nil
	}
	if c.Interface == "" {
		return fieldErr("Interface", "", "required for ProxyDHCP6: the network interface machines boot on")
	}
	lookup := c.proxy6.lookup
	if lookup == nil {
		lookup = proxydhcp6.InterfaceAddr
	}
	ip, mac, err := lookup(c.Interface)
	if err != nil {
		return &FieldError{Field: "Interface", Value: c.Interface, Err: err}
	}
	c.proxy6.ip, c.proxy6.mac = ip, mac
	if c.TFTPAddr == "" && c.TFTPListener == nil {
		c.TFTPAddr = ":69"
	}
	if c.ServerURL == "" && c.serverIP == nil { // no IPv4 on the interface
		c.ServerURL = "http://" + net.JoinHostPort(ip.String(), c.httpPort())
	}
	if c.ServerURL == "" {
		c.ServerURL = "http://" + net.JoinHostPort(c.serverIP.String(), c.httpPort())
	}
	u, err := url.Parse(c.ServerURL)
	if err != nil {
		return &FieldError{Field: "ServerURL", Value: c.ServerURL, Err: err}
	}
	// An IPv4 literal is no use to an IPv6 client: the same server at the
	// interface's IPv6 address. A name or an IPv6 literal is kept.
	if host, err := netip.ParseAddr(u.Hostname()); err == nil && host.Is4() {
		port := u.Port()
		if port == "" {
			port = c.httpPort()
		}
		u.Host = net.JoinHostPort(ip.String(), port)
	}
	c.proxy6.serverURL = u.String()
	return nil
}

// tftpHost is where TFTP binds when its address names no host: the
// interface's address, not every network; with ProxyDHCP6 the IPv6 one,
// or, when IPv4 ProxyDHCP is on too, the dual-stack wildcard, one socket
// for both families (every interface: a socket binds one address).
func (c *Config) tftpHost(port string) string {
	switch {
	case c.ProxyDHCP6 && c.serverIP != nil:
		return net.JoinHostPort("", port)
	case c.ProxyDHCP6:
		return net.JoinHostPort(c.proxy6.ip.String(), port)
	case c.serverIP != nil:
		return net.JoinHostPort(c.serverIP.String(), port)
	}
	return net.JoinHostPort("", port)
}

type dhcp6Conn struct {
	conn *net.UDPConn
	port proxydhcp6.Port
}

func (l dhcp6Conn) name() string { return fmt.Sprintf("proxydhcp6:%d", l.port) }

// bindProxyDHCP6 makes the server and binds its ports (or takes the
// handed-in connections); closers gets what was bound.
func (c *Config) bindProxyDHCP6(boots *timeline.Recorder, snaps proxydhcp6.Snapshots, log *slog.Logger, reg prometheus.Registerer, closers *[]func()) (*proxydhcp6.Server, []dhcp6Conn, error) {
	if !c.ProxyDHCP6 {
		return nil, nil, nil
	}
	srv := proxydhcp6.New(proxydhcp6.Config{ServerIP: c.proxy6.ip, ServerMAC: c.proxy6.mac, ServerURL: c.proxy6.serverURL,
		EFIFile: c.EFIBinary, ARM64File: c.ARM64Binary, Seen: c.Seen, Timeline: boots}, snaps, log, reg)
	var conns []dhcp6Conn
	for _, l := range []dhcp6Conn{{c.DHCP6Conn, proxydhcp6.ServerPort}, {c.BootServer6Conn, proxydhcp6.BootServerPort}} {
		if l.conn == nil {
			var err error
			if l.conn, err = proxydhcp6.Listen(c.Interface, l.port); err != nil {
				return nil, nil, err
			}
			*closers = append(*closers, func() { l.conn.Close() })
		}
		conns = append(conns, l)
		log.Info("listening", "component", l.name(), "interface", c.Interface, "addr", l.conn.LocalAddr().String(), "server_ip", c.proxy6.ip.String(), "server_url", c.proxy6.serverURL)
	}
	return srv, conns, nil
}
