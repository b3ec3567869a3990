package schema

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Machine is what a booting machine tells about itself, normalised. It is
// also the part of TemplateData that describes the machine.
type Machine struct {
	MAC      string
	UUID     string
	Hostname string
	Serial   string
	Arch     string
	Labels   map[string]string
	// State is the machine's durable state ("" or StateInstalled), what
	// selector key state matches. Only the server sets it, from its
	// machine state store: ParseMachine refuses it in a request.
	State string
}

const maxLabels = 32

// Bounds of a boot request's query: the five machine keys and maxLabels
// labels fit with room to spare; /boot.ipxe's query is a few hundred bytes.
const (
	MaxQueryParams = 64
	MaxQueryLen    = 8 << 10
)

// ParseMachineQuery reads a machine from a raw URL query, strictly: a query
// that does not parse (a ';' separator, a bad escape), has more than
// MaxQueryParams parameters or MaxQueryLen bytes is an error, as
// ParseMachine's are, never a machine with the bad part left out (which
// could match the default group).
func ParseMachineQuery(raw string) (Machine, error) {
	// Bounded before parsing, so a flood of parameters is never allocated.
	if n := strings.Count(raw, "&") + 1; n > MaxQueryParams {
		return Machine{}, fmt.Errorf("%d parameters, at most %d", n, MaxQueryParams)
	}
	if len(raw) > MaxQueryLen {
		return Machine{}, fmt.Errorf("query of %d bytes, at most %d", len(raw), MaxQueryLen)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return Machine{}, err
	}
	return ParseMachine(q)
}

// ParseMachine reads a machine from request values (query parameters or
// the render command's flags): mac, uuid, hostname, serial, arch, and any
// other key as a label. Empty values count as absent, as iPXE sends empty
// settings. A key given more than once is an error, even with one value
// twice: iPXE's /boot.ipxe never repeats one, and a repeat could make the
// request mean two machines. Errors name the offending field.
func ParseMachine(q url.Values) (Machine, error) {
	m := Machine{}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vals := q[k]
		if len(vals) > 1 {
			return Machine{}, fmt.Errorf("%s: given %d times; give each key once", keyName(k), len(vals))
		}
		if len(vals) == 0 || vals[0] == "" {
			continue
		}
		v := vals[0]
		if k == KeyState {
			// A machine must not declare itself installed (and so boot its
			// disk, or skip an install): the server alone knows.
			return Machine{}, fmt.Errorf("state: set by the server from its record of the machine, never by a request")
		}
		if !knownKey(k) {
			if err := CheckLabelKey(k); err != nil {
				return Machine{}, fmt.Errorf("%s: %w", keyName(k), err)
			}
			if len(m.Labels) == maxLabels {
				return Machine{}, fmt.Errorf("%s: more than %d labels", k, maxLabels)
			}
		}
		norm, err := NormalizeValue(k, v)
		if err != nil {
			return Machine{}, fmt.Errorf("%s: %w", k, err)
		}
		m.set(k, norm)
	}
	return m, nil
}

// keyName is k as an error message names it: as is when it is a valid
// key, else quoted and clipped.
func keyName(k string) string {
	if knownKey(k) || CheckLabelKey(k) == nil {
		return k
	}
	return quoteInput(k)
}

// String lists the machine's values as key=value, in a fixed order.
func (m *Machine) String() string {
	var parts []string
	for _, f := range []struct{ k, v string }{
		{KeyMAC, m.MAC}, {KeyUUID, m.UUID}, {KeyHostname, m.Hostname},
		{KeySerial, m.Serial}, {KeyArch, m.Arch}, {KeyState, m.State},
	} {
		if f.v != "" {
			parts = append(parts, f.k+"="+f.v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		parts = append(parts, k+"="+m.Labels[k])
	}
	return strings.Join(parts, " ")
}

// Value returns the machine's value for a selector key.
func (m *Machine) Value(key string) string {
	switch key {
	case KeyMAC:
		return m.MAC
	case KeyUUID:
		return m.UUID
	case KeyHostname:
		return m.Hostname
	case KeySerial:
		return m.Serial
	case KeyArch:
		return m.Arch
	case KeyState:
		return m.State
	}
	return m.Labels[key]
}

// set stores a normalised value under a selector key: a field or a label.
func (m *Machine) set(key, v string) {
	switch key {
	case KeyMAC:
		m.MAC = v
	case KeyUUID:
		m.UUID = v
	case KeyHostname:
		m.Hostname = v
	case KeySerial:
		m.Serial = v
	case KeyArch:
		m.Arch = v
	case KeyState:
		m.State = v
	default:
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[key] = v
	}
}
