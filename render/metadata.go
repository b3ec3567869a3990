package render

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/pxeops/pxeops/schema"
)

// WriteMetadata writes matchbox's /metadata for machine m as group g;
// rawQuery is the request's query as sent, without pxeops' token (""
// when there was no request, as in pxeops render).
func (s *Snapshot) WriteMetadata(w io.Writer, g *Group, m *Machine, rawQuery string) error {
	_, err := w.Write(metadataEnv(g, m, rawQuery))
	return err
}

// metadataEnv renders /metadata the way matchbox does: KEY=value lines,
// sorted by key, from (later layers win on a clash)
//
//  1. the template data's .Metadata (pxeops.yaml's, the profile's and the
//     group's, merged) flattened: nested keys joined with '_',
//     upper-cased, list items by index (matchbox drops lists);
//  2. LABEL_<KEY> for each label: pxeops' own older spelling, kept;
//  3. the machine's values and labels as top-level keys (MAC, HOSTNAME,
//     ZONE), as matchbox writes its selector values;
//  4. REQUEST_QUERY_<KEY> for each query value, normalised as selectors
//     are, and REQUEST_RAW_QUERY, the query as sent; they replace a
//     metadata key request (matchbox's data["request"]) whole.
//
// Values are escaped so none can add a line.
func metadataEnv(g *Group, m *Machine, rawQuery string) []byte {
	vars := map[string]string{}
	var flatten func(prefix string, v any)
	flatten = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				flatten(join(prefix, k), sub)
			}
		case []any:
			for i, sub := range v {
				flatten(join(prefix, fmt.Sprint(i)), sub)
			}
		case nil:
			vars[prefix] = ""
		default:
			vars[prefix] = fmt.Sprint(v)
		}
	}
	for k, v := range g.data.Metadata {
		// As in matchbox, the request replaces metadata's request whole,
		// so no REQUEST_QUERY_* line comes from anywhere but the query.
		if join("", k) != "REQUEST" {
			flatten(join("", k), v)
		}
	}
	for k, v := range m.Labels {
		vars[join("LABEL", k)] = v
	}
	own := map[string]string{"MAC": m.MAC, "UUID": m.UUID, "HOSTNAME": m.Hostname, "SERIAL": m.Serial, "ARCH": m.Arch}
	for k, v := range m.Labels {
		own[join("", k)] = v
	}
	for k, v := range own {
		if v != "" {
			vars[k] = v
			vars[join("REQUEST_QUERY", k)] = v
		}
	}
	if rawQuery != "" {
		vars["REQUEST_RAW_QUERY"] = rawQuery
	}
	var b strings.Builder
	escape := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		b.WriteString(k + "=" + escape.Replace(vars[k]) + "\n")
	}
	return []byte(b.String())
}

func join(prefix, key string) string {
	key = strings.ToUpper(strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(key))
	if prefix == "" {
		return key
	}
	return prefix + "_" + key
}

// MachineQuery is the boot request query that names all of m's values,
// as /boot.ipxe would send them (schema.MachineQuery).
func MachineQuery(m *Machine) string { return schema.MachineQuery(m, nil) }
