// Package discover proposes PXE clients that no group matches as group
// files, one per machine, on a branch of their own (source/propose), so
// that first contact with a new machine becomes a reviewable change to
// the repository instead of a line in a log.
//
// Plan is the pure part: the config tree at the base, what the branch
// holds already, and the machines the server recorded (GET
// /v1/discovered) in; the files to propose and what became of each
// machine out. Pass runs Plan against a repository and commits its files.
package discover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/pxeops/pxeops/schema"
)

// Machine is one PXE client no group matched, as the server recorded it;
// the JSON is GET /v1/discovered's.
type Machine struct {
	MAC         string    `json:"mac"`
	UUID        string    `json:"uuid,omitempty"`
	Arch        string    `json:"arch,omitempty"`
	VendorClass string    `json:"vendor_class,omitempty"`
	Relay       string    `json:"relay,omitempty"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	Seen        int       `json:"seen"`
}

// List is GET /v1/discovered's answer.
type List struct {
	Machines []Machine `json:"machines"`
}

// Bounds of what is read: the server's list (or a file in its shape) and
// what one pass proposes.
const (
	MaxBody     = 4 << 20 // bytes of a list
	MaxMachines = 10_000  // machines in a list
	DefaultMax  = 256     // files in one proposal
)

// Decode reads a list in GET /v1/discovered's shape, strictly: unknown
// fields, trailing data, more than MaxBody bytes or MaxMachines machines
// are errors. Values are checked later, machine by machine (Normalize).
func Decode(r io.Reader) ([]Machine, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBody {
		return nil, fmt.Errorf("more than %d bytes", MaxBody)
	}
	// Counted before decoding, so a flood is never allocated.
	if n := bytes.Count(data, []byte(`"mac"`)); n > MaxMachines {
		return nil, fmt.Errorf("%d machines, at most %d", n, MaxMachines)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l List
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("not a list of discovered machines ({\"machines\":[...]}): %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the list")
	}
	if len(l.Machines) > MaxMachines {
		return nil, fmt.Errorf("%d machines, at most %d", len(l.Machines), MaxMachines)
	}
	return l.Machines, nil
}

// Normalize checks every value of m through schema.NormalizeValue (the
// one check requests and repository files go through), and returns m in
// canonical form: only then may a value reach a YAML file. Any value that
// does not pass refuses the machine: a recorder's field is either sound
// or a sign that the request was not.
func Normalize(m Machine) (Machine, error) {
	var err error
	if m.MAC, err = schema.NormalizeValue(schema.KeyMAC, m.MAC); err != nil {
		return Machine{}, err
	}
	if m.UUID != "" {
		if m.UUID, err = schema.NormalizeValue(schema.KeyUUID, m.UUID); err != nil {
			return Machine{}, err
		}
	}
	if m.Arch != "" {
		if m.Arch, err = schema.NormalizeValue(schema.KeyArch, m.Arch); err != nil {
			return Machine{}, err
		}
	}
	if m.VendorClass != "" {
		if m.VendorClass, err = schema.NormalizeValue("vendor_class", m.VendorClass); err != nil {
			return Machine{}, err
		}
	}
	if m.Relay != "" {
		a, perr := netip.ParseAddr(m.Relay)
		if perr != nil || a.Zone() != "" {
			return Machine{}, fmt.Errorf("invalid relay %q: want an IP address", clip(m.Relay))
		}
		if m.Relay, err = schema.NormalizeValue("relay", a.String()); err != nil {
			return Machine{}, err
		}
	}
	if m.Seen < 0 {
		return Machine{}, fmt.Errorf("invalid seen %d", m.Seen)
	}
	for _, t := range []time.Time{m.FirstSeen, m.LastSeen} {
		if !t.IsZero() && (t.Year() < 2000 || t.Year() > 9999) {
			return Machine{}, fmt.Errorf("invalid time %s", t.Format(time.RFC3339))
		}
	}
	m.FirstSeen, m.LastSeen = m.FirstSeen.UTC(), m.LastSeen.UTC()
	return m, nil
}

func requests(n int) string {
	if n == 1 {
		return "1 request"
	}
	return fmt.Sprintf("%d requests", n)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// FileName is the group file's name for a MAC (canonical, as Normalize
// gives it), without its directory: discovered-52-54-00-a1-9c-ae.yaml.
func FileName(mac string) string {
	return "discovered-" + strings.ReplaceAll(mac, ":", "-") + ".yaml"
}

// DisabledSuffix ends the file of a machine proposed without a profile:
// schema reads only .yaml files, so check passes (with a warning naming
// the file) and the machine boots nothing until a person names a profile
// and renames the file.
const DisabledSuffix = ".disabled"

// Content is the group file for m, normalised (Normalize), booting
// profile; "" writes the disabled form. Every value is one Normalize
// let through (letters, digits and . _ : / + = , @ -) or a time, and is
// quoted, so no value can add a key or end a comment.
func Content(m Machine, profile string) []byte {
	var b bytes.Buffer
	b.WriteString("# Discovered by pxeops: a PXE client that no group matched.\n")
	if !m.FirstSeen.IsZero() {
		fmt.Fprintf(&b, "# first seen: %s\n", m.FirstSeen.Format(time.RFC3339))
	}
	if !m.LastSeen.IsZero() {
		fmt.Fprintf(&b, "# last seen:  %s (%s when proposed)\n", m.LastSeen.Format(time.RFC3339), requests(m.Seen))
	}
	for _, f := range []struct{ name, v string }{{"uuid", m.UUID}, {"arch", m.Arch}, {"vendor class", m.VendorClass}, {"relay", m.Relay}} {
		if f.v != "" {
			fmt.Fprintf(&b, "# %s: %s\n", f.name, f.v)
		}
	}
	if profile == "" {
		b.WriteString("#\n# Disabled: pxeops reads only .yaml files in groups/. To boot this\n")
		b.WriteString("# machine, name its profile below and drop the .disabled suffix.\n")
	}
	fmt.Fprintf(&b, "description: \"discovered %s\"\n", m.MAC)
	fmt.Fprintf(&b, "profile: %q\n", profile)
	b.WriteString("selector:\n")
	fmt.Fprintf(&b, "  mac: %q\n", m.MAC)
	if m.Arch != "" {
		fmt.Fprintf(&b, "  arch: %q\n", m.Arch)
	}
	return b.Bytes()
}
