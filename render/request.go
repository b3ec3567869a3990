package render

import (
	"net/url"

	"github.com/pxeops/pxeops/schema"
)

// The servers see the model through render alone. A boot request's
// machine and its parsing live in schema, since templates read the
// machine (schema.TemplateData) and a request's values are normalised as
// selectors are; render names them here so that no server imports schema.

// Machine is what a booting machine tells about itself, normalised.
type Machine = schema.Machine

// ParseMachineQuery reads a boot request's machine from its raw URL
// query, strictly: a query that does not parse whole is an error, never a
// machine with the bad part left out (schema.ParseMachineQuery).
func ParseMachineQuery(raw string) (Machine, error) { return schema.ParseMachineQuery(raw) }

// ParseMachine reads a machine from values (the render command's flags);
// errors name the offending key (schema.ParseMachine).
func ParseMachine(q url.Values) (Machine, error) { return schema.ParseMachine(q) }

// StateInstalled is the machine state an installer's report records
// (Machine.State; selector key state).
const StateInstalled = schema.StateInstalled

// ParseMAC normalises a MAC given alone, as in the Pixiecore API's path.
func ParseMAC(v string) (string, error) { return schema.NormalizeValue(schema.KeyMAC, v) }

// The config kinds a profile serves (Profile.Source.ConfigType()).
const (
	ConfigIgnition    = schema.ConfigIgnition
	ConfigCloudConfig = schema.ConfigCloudConfig
	ConfigRaw         = schema.ConfigRaw
	ConfigButane      = schema.ConfigButane
)
