package render

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteMetadata writes matchbox's /metadata for machine m as group g.
func (s *Snapshot) WriteMetadata(w io.Writer, g *Group, m *Machine) error {
	_, err := w.Write(metadataEnv(g, m))
	return err
}

// metadataEnv renders matchbox's /metadata: the group's metadata flattened
// to KEY=value lines (nested keys joined with '_', upper-cased), then the
// machine's own values, sorted by key.
func metadataEnv(g *Group, m *Machine) []byte {
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
	flatten("", g.Source.Metadata)
	for k, v := range map[string]string{"MAC": m.MAC, "UUID": m.UUID, "HOSTNAME": m.Hostname, "SERIAL": m.Serial, "ARCH": m.Arch} {
		if v != "" {
			vars[k] = v
		}
	}
	for k, v := range m.Labels {
		vars[join("LABEL", k)] = v
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
