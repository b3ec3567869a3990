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
}

const maxLabels = 32

// ParseMachine reads a machine from request values (query parameters or
// the render command's flags): mac, uuid, hostname, serial, arch, and any
// other key as a label. Empty values count as absent, as iPXE sends empty
// settings. Errors name the offending field.
func ParseMachine(q url.Values) (Machine, error) {
	m := Machine{}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vals := q[k]
		v := ""
		for _, x := range vals {
			if x == "" {
				continue
			}
			if v != "" && x != v {
				return Machine{}, fmt.Errorf("%s: given twice with different values (%q, %q)", k, v, x)
			}
			v = x
		}
		if v == "" {
			continue
		}
		norm, err := NormalizeValue(k, v)
		if err != nil {
			return Machine{}, fmt.Errorf("%s: %w", k, err)
		}
		if !knownKey(k) {
			if err := CheckLabelKey(k); err != nil {
				return Machine{}, fmt.Errorf("%s: %w", k, err)
			}
			if len(m.Labels) == maxLabels {
				return Machine{}, fmt.Errorf("%s: more than %d labels", k, maxLabels)
			}
		}
		m.set(k, norm)
	}
	return m, nil
}

// String lists the machine's values as key=value, in a fixed order.
func (m *Machine) String() string {
	var parts []string
	for _, f := range []struct{ k, v string }{
		{KeyMAC, m.MAC}, {KeyUUID, m.UUID}, {KeyHostname, m.Hostname},
		{KeySerial, m.Serial}, {KeyArch, m.Arch},
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
	default:
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[key] = v
	}
}
