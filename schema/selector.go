package schema

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Selector keys with a meaning of their own; any other key is a label.
const (
	KeyMAC      = "mac"
	KeyUUID     = "uuid"
	KeyHostname = "hostname"
	KeySerial   = "serial"
	KeyArch     = "arch"
	// KeyState matches the machine's durable state, which only the
	// server sets (from its machine state store): never a request.
	KeyState = "state"
)

// StateInstalled is the one value of KeyState: the machine's installer
// reported completion.
const StateInstalled = "installed"

func knownKey(k string) bool {
	switch k {
	case KeyMAC, KeyUUID, KeyHostname, KeySerial, KeyArch, KeyState:
		return true
	}
	return false
}

var (
	labelKeyPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$`)
	hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	uuidPattern     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// archAliases maps the names firmware, iPXE (${buildarch}) and people use
// to one spelling per architecture.
var archAliases = map[string]string{
	"x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64",
	"i386": "i386", "i686": "i386", "x86": "i386",
	"arm64": "arm64", "aarch64": "arm64",
	"arm32": "arm32", "arm": "arm32",
}

const maxValueLen = 128

// NormalizeValue checks a selector or machine value for key and returns
// its canonical form, the one matching compares. Requests and repository
// files go through this one function, so both sides always agree. Values
// are restricted to characters that cannot break out of an iPXE script or
// a kernel command line: no spaces, quotes, '$', braces or control bytes.
func NormalizeValue(key, v string) (string, error) {
	switch key {
	case KeyMAC:
		hw, err := net.ParseMAC(v)
		if err != nil || len(hw) != 6 {
			return "", fmt.Errorf("invalid MAC %s: write six hex pairs like 52:54:00:a1:9c:ae", quoteInput(v))
		}
		return hw.String(), nil
	case KeyUUID:
		u := strings.ToLower(v)
		if !uuidPattern.MatchString(u) {
			return "", fmt.Errorf("invalid UUID %s: write it like 4c4c4544-0042-3510-8050-b4c04f4d3232", quoteInput(v))
		}
		return u, nil
	case KeyHostname:
		h := strings.ToLower(strings.TrimSuffix(v, "."))
		if len(h) > 253 || !hostnamePattern.MatchString(h) {
			return "", fmt.Errorf("invalid hostname %s: use letters, digits, '-' and '.' (RFC 1123)", quoteInput(v))
		}
		return h, nil
	case KeyArch:
		a, ok := archAliases[strings.ToLower(v)]
		if !ok {
			return "", fmt.Errorf("unknown arch %s: use x86_64 (amd64), i386, arm64 (aarch64) or arm32", quoteInput(v))
		}
		return a, nil
	case KeyState:
		if v != StateInstalled {
			return "", fmt.Errorf("invalid state %s: the only state is installed", quoteInput(v))
		}
		return v, nil
	case KeySerial:
		// Firmware fills serials like "To be filled by O.E.M."; spaces
		// become '_' on both sides, so they match without ever reaching
		// a script or a kernel command line.
		v = strings.Join(strings.Fields(v), "_")
	}
	if err := checkSafe(v); err != nil {
		return "", fmt.Errorf("invalid %s value %s: %w", key, quoteInput(v), err)
	}
	return v, nil
}

// CheckLabelKey reports whether k may name a label.
func CheckLabelKey(k string) error {
	if !labelKeyPattern.MatchString(k) {
		return fmt.Errorf("invalid label key %s: use lowercase letters, digits, '.', '_', '/' and '-'", quoteInput(k))
	}
	return nil
}

func checkSafe(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	if len(v) > maxValueLen {
		return fmt.Errorf("longer than %d characters", maxValueLen)
	}
	for _, c := range []byte(v) {
		if !safeByte(c) {
			return fmt.Errorf("character %q not allowed; use letters, digits and . _ : / + = , @ -", c)
		}
	}
	return nil
}

func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("._:/+=,@-", c) >= 0
}

// maxQuoted is how much of an input value an error message quotes.
const maxQuoted = 64

// quoteInput quotes an outside value for an error message, clipped at 64
// bytes with "…" and its full length, so that an answer or a log line
// never echoes a large input back.
func quoteInput(v string) string {
	if len(v) <= maxQuoted {
		return strconv.Quote(v)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return strconv.Quote(v[:n]) + "… (" + strconv.Itoa(len(v)) + " bytes)"
}
