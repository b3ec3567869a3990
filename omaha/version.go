package omaha

import (
	"strconv"
	"strings"
)

// CompareVersions orders release versions such as 4081.2.0: dotted parts
// compare as numbers where both are numbers, else as text; a version that
// is a prefix of another sorts first. It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.ParseUint(pa[i], 10, 64)
		nb, errB := strconv.ParseUint(pb[i], 10, 64)
		switch {
		case errA == nil && errB == nil && na != nb:
			if na < nb {
				return -1
			}
			return 1
		case (errA != nil || errB != nil) && pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return 0
}

// validVersion accepts what can go into a URL path and a YAML scalar
// unquoted: digits, letters, dots, dashes, underscores and plus signs.
func validVersion(v string) bool {
	if v == "" || len(v) > 64 || v[0] == '.' {
		return false
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(".-_+", r)) {
			return false
		}
	}
	return !strings.Contains(v, "..")
}
