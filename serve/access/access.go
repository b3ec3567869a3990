// Package access decides who gets a machine's boot answers (its iPXE
// script, its config): the machine itself, and nobody else. It is the
// decision alone, without I/O: the HTTP server hands it the facts of a
// request, the kernel's neighbour table (serve/neighbour) and the
// bindings the ProxyDHCP boot server learned, and serves or refuses
// what Decide says. README's "Who gets a machine's config" is the threat
// model this implements.
//
// A machine is known by the MAC it asks for. Two proofs are taken:
//
//   - On the server's own L2 segment, the kernel's neighbour table maps
//     the request's source address to the MAC of the host that sent it
//     (the TCP handshake needed that entry): it must be the MAC asked for.
//   - Across a router (no neighbour entry for the source), the script is
//     served to the address the machine had in its port-4011 exchange
//     moments before, and carries a token bound to the MAC, that address
//     and the revision; its config URLs are served only with that token,
//     from that address, before it expires.
package access

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Mode says which answers are checked.
type Mode int

const (
	// Auto, the default, checks the answers of groups whose profile uses
	// a secret and serves the rest to anyone, as before.
	Auto Mode = iota
	// Machine checks every boot answer.
	Machine
	// Open checks nothing; a tree with a secret is refused under it.
	Open
)

// modeNames are the names ParseMode takes, in Mode order.
var modeNames = [...]string{"auto", "machine", "open"}

// Modes lists the names ParseMode takes, in the order a flag lists them;
// a new slice each call, so no caller can change them.
func Modes() []string { return slices.Clone(modeNames[:]) }

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a mode by name.
func ParseMode(s string) (Mode, error) {
	for i, name := range modeNames {
		if s == name {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown access mode %q: want auto, machine or open", s)
}

// Kind is what a request asks for.
type Kind int

const (
	// Script is the boot script (/ipxe, the Pixiecore API): what iPXE
	// fetches right after its DHCP exchange. A checked script carries a
	// token for the config URLs in it.
	Script Kind = iota
	// Config is what the booted OS fetches (/config and its aliases,
	// /metadata): across a router, only with the script's token.
	Config
)

// Request is what Decide knows of one request.
type Request struct {
	Kind Kind
	// Remote is the TCP peer's address (never a header's claim),
	// unmapped from IPv4-in-IPv6.
	Remote netip.Addr
	// MAC is the normalised MAC the request asks for ("" when it names
	// none).
	MAC string
	// Token is the pxeops.token the request carries, as given.
	Token string
	// Revision is the revision the answer would come from.
	Revision string
	// Protected says the answer uses a secret: Auto checks only these.
	Protected bool
	Now       time.Time
}

// Neighbours is the kernel's neighbour table (ARP, NDP): the MAC of the
// directly connected host at ip, if there is one.
type Neighbours interface {
	MAC(ip netip.Addr) (mac string, ok bool)
}

// Bindings are the MAC-to-address bindings the boot server learned.
type Bindings interface {
	// Bound reports whether mac was last seen at ip, recently enough.
	Bound(mac string, ip netip.Addr, now time.Time) bool
}

// Reason names why a request was served or refused. The set is fixed, so
// it can label a metric and key a rate-limited log.
type Reason int

const (
	// Served:
	AllowOpen      Reason = iota // mode open
	AllowNoSecret                // mode auto, the answer uses no secret
	AllowNeighbour               // the sender is the MAC asked for, on this segment
	AllowBinding                 // routed: the MAC's boot-server exchange came from this address
	AllowToken                   // routed: the script's token, from its address, in time
	// Refused:
	DenyNoMAC        // the request names no MAC, so nothing can be checked
	DenyOtherMAC     // the sender is on this segment with another MAC
	DenyNotBound     // routed, and no boot-server exchange of the MAC from this address
	DenyNoToken      // routed config request without a token
	DenyBadToken     // a token that is malformed, forged or for another machine, address or revision
	DenyExpiredToken // a token past its expiry
	numReasons
)

var reasonNames = [numReasons]string{
	"open", "no_secret", "neighbour", "binding", "token",
	"no_mac", "other_mac", "not_bound", "no_token", "bad_token", "expired_token",
}

// Reasons lists every reason's name, for metrics to set up front.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

func (r Reason) String() string {
	if r >= 0 && r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Allowed reports whether r serves the request.
func (r Reason) Allowed() bool { return r < DenyNoMAC }

// Explain is the sentence a refused request is answered with (403). It
// says what was missing, never what another machine has.
func (r Reason) Explain() string {
	switch r {
	case DenyNoMAC:
		return "this server gives each machine its own answers: the request must name the machine's mac"
	case DenyOtherMAC:
		return "the request comes from a host on this network whose MAC is not the one asked for"
	case DenyNotBound:
		return "the request comes from an address this MAC did not boot from (no port-4011 exchange from it in the last minutes)"
	case DenyNoToken:
		return "the request comes through a router and carries no pxeops.token; fetch the URL the boot script gave"
	case DenyBadToken:
		return "the pxeops.token is not valid for this MAC, address and revision; boot again for a fresh one"
	case DenyExpiredToken:
		return "the pxeops.token has expired; boot again for a fresh one"
	}
	return r.String()
}

// Decision is Decide's answer.
type Decision struct {
	Reason Reason
	// IssueToken says the answer (a script) gets a token for its
	// config URLs: it was checked and the OS will fetch those.
	IssueToken bool
}

// Allowed reports whether the request is served.
func (d Decision) Allowed() bool { return d.Reason.Allowed() }

// Decide says whether req is served. It reads neighbours first: a
// sender on this segment is who its MAC says, and a mismatch is final
// (a routed token from the same address does not override it: that
// address now belongs to another host). Only a sender with no neighbour
// entry, i.e. behind a router, is judged by bindings (scripts) or
// tokens (configs). bindings may be nil (no ProxyDHCP: no routed
// scripts); tokens may be nil (no routed configs).
func Decide(mode Mode, req Request, neighbours Neighbours, bindings Bindings, tokens *Tokens) Decision {
	switch {
	case mode == Open:
		return Decision{Reason: AllowOpen}
	case mode == Auto && !req.Protected:
		return Decision{Reason: AllowNoSecret}
	case req.MAC == "":
		return Decision{Reason: DenyNoMAC}
	}
	issue := req.Kind == Script && tokens != nil
	if mac, ok := neighbours.MAC(req.Remote); ok {
		if mac != req.MAC {
			return Decision{Reason: DenyOtherMAC}
		}
		return Decision{Reason: AllowNeighbour, IssueToken: issue}
	}
	if req.Kind == Script {
		if bindings != nil && bindings.Bound(req.MAC, req.Remote, req.Now) {
			return Decision{Reason: AllowBinding, IssueToken: issue}
		}
		return Decision{Reason: DenyNotBound}
	}
	if req.Token == "" {
		return Decision{Reason: DenyNoToken}
	}
	if tokens == nil {
		return Decision{Reason: DenyBadToken}
	}
	return Decision{Reason: tokens.Verify(req.Token, req.MAC, req.Remote, req.Revision, req.Now)}
}
