package schema

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	tparse "text/template/parse"
)

// Bounds of a secret set: a Kubernetes Secret holds at most 1 MiB, and a
// template reads tokens, keys and hashes, not disks.
const (
	MaxSecretSize   = 64 << 10 // bytes of one secret
	MaxSecrets      = 1000     // secrets in one set
	MaxSecretsTotal = 4 << 20  // bytes of all secrets together
	maxSecretName   = 253      // a Kubernetes Secret key's limit
)

// secretFunc is the template function that reads a secret.
const secretFunc = "secret"

var secretNamePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// CheckSecretName accepts what a Kubernetes Secret key may be, less a
// leading '.' or '-' (hidden files, flags): letters, digits, '.', '_', '-'.
func CheckSecretName(name string) error {
	switch {
	case name == "":
		return errors.New("empty secret name")
	case len(name) > maxSecretName:
		return fmt.Errorf("secret name of %d bytes, more than %d", len(name), maxSecretName)
	case !secretNamePattern.MatchString(name):
		return fmt.Errorf("invalid secret name %q: use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'", name)
	}
	return nil
}

// Secrets is the set of secrets templates may read with
// {{ secret "name" }}: values from a directory, or only their names (CI
// checks a tree without the values), or values masked as
// <secret:name> (render's default). It is immutable once made.
//
// It never prints a value: String, GoString, LogValue and MarshalJSON
// say how many names it holds, so a stray %v or log attribute cannot
// leak one.
type Secrets struct {
	origin string            // where the set came from, for errors: "the secrets directory /run/secrets"
	names  []string          // sorted
	values map[string]string // nil when only names are known
	masked bool
	// lenient renders a name the set lacks as its placeholder: check's
	// runs, where checkSecretRefs reports it once, where it is written.
	lenient bool
	sum     [32]byte // unkeyed hash of names and values: keys the template-run cache, never shown
}

// NewSecrets makes a set of values. origin says, in errors, where the
// set came from.
func NewSecrets(origin string, values map[string][]byte) (*Secrets, error) {
	if len(values) > MaxSecrets {
		return nil, fmt.Errorf("%d secrets, more than the %d allowed", len(values), MaxSecrets)
	}
	s := &Secrets{origin: origin, values: make(map[string]string, len(values))}
	total := 0
	for name, v := range values {
		if err := CheckSecretName(name); err != nil {
			return nil, err
		}
		if len(v) > MaxSecretSize {
			return nil, fmt.Errorf("secret %q is over the %d-byte limit", name, MaxSecretSize)
		}
		if total += len(v); total > MaxSecretsTotal {
			return nil, fmt.Errorf("secrets total more than %d bytes", MaxSecretsTotal)
		}
		s.values[name] = string(v)
	}
	s.names = slices.Sorted(maps.Keys(s.values))
	h := sha256.New()
	var n [8]byte
	for _, name := range s.names {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s.values[name])))
		h.Write([]byte(name + "\x00"))
		h.Write(n[:])
		h.Write([]byte(s.values[name]))
	}
	h.Sum(s.sum[:0])
	return s, nil
}

// SecretNames makes a set that knows only names: templates render each
// as <secret:name>, and a name outside the set is still an error.
func SecretNames(origin string, names []string) (*Secrets, error) {
	if len(names) > MaxSecrets {
		return nil, fmt.Errorf("%d secret names, more than the %d allowed", len(names), MaxSecrets)
	}
	for _, name := range names {
		if err := CheckSecretName(name); err != nil {
			return nil, err
		}
	}
	s := &Secrets{origin: origin, names: slices.Compact(slices.Sorted(slices.Values(names)))}
	h := sha256.New()
	h.Write([]byte("names\x00" + strings.Join(s.names, "\x00")))
	h.Sum(s.sum[:0])
	return s, nil
}

// ParseSecretNames reads a names file: one name per line; blank lines
// and lines starting with # are skipped, spaces around a name trimmed.
// Errors name the line and column.
func ParseSecretNames(data []byte) ([]string, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes, more than the %d a names file may be", len(data), MaxFileSize)
	}
	var names []string
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxFileSize+1)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		name := strings.TrimSpace(text)
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		col := 1 + strings.Index(text, name)
		if err := CheckSecretName(name); err != nil {
			return nil, fmt.Errorf("%d:%d: %w", line, col, err)
		}
		if first, dup := seen[name]; dup {
			return nil, fmt.Errorf("%d:%d: secret %q listed twice (first on line %d)", line, col, name, first)
		}
		if len(names) == MaxSecrets {
			return nil, fmt.Errorf("%d:%d: more than %d secret names", line, col, MaxSecrets)
		}
		seen[name] = line
		names = append(names, name)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return names, nil
}

// AnySecrets is a set that renders every name as its placeholder: for
// loads where secrets are beside the point (the image updater checks
// its edit of an image file, without the server's secrets).
func AnySecrets() *Secrets {
	return &Secrets{origin: "no secrets directory", lenient: true, masked: true}
}

// Masked is the same set with every value replaced by <secret:name>.
func (s *Secrets) Masked() *Secrets {
	if s == nil {
		return nil
	}
	c := *s
	c.masked = true
	return &c
}

func (s *Secrets) forCheck() *Secrets {
	if s == nil {
		return &Secrets{lenient: true}
	}
	c := *s
	c.lenient = true
	return &c
}

// Names lists the names of the set, sorted.
func (s *Secrets) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Has reports whether the set holds name.
func (s *Secrets) Has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearch(s.names, name)
	return ok
}

// Fingerprint names the set's content without revealing it: HMAC-SHA-256
// of the names and values under key, which the caller keeps to itself,
// so a low-entropy value cannot be guessed from a fingerprint by trying
// candidates.
func (s *Secrets) Fingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(s.sum[:])
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// Placeholder is what a masked or names-only set renders for name.
func Placeholder(name string) string { return "<secret:" + name + ">" }

// value is what {{ secret name }} renders.
func (s *Secrets) value(name string) (string, error) {
	if !s.Has(name) {
		if s.lenient {
			return Placeholder(name), nil
		}
		return "", s.missing(name)
	}
	if s.masked || s.values == nil {
		return Placeholder(name), nil
	}
	return s.values[name], nil
}

// real reports whether the set renders real values.
func (s *Secrets) real() bool { return s != nil && !s.masked && s.values != nil }

func (s *Secrets) missing(name string) error {
	if s == nil {
		return fmt.Errorf("secret %q does not exist: no secrets are given (a secrets directory, or the names for a check)", name)
	}
	hint := ""
	if best := closest(name, s.names); best != "" {
		hint = fmt.Sprintf("; did you mean %q?", best)
	}
	return fmt.Errorf("secret %q does not exist in %s%s", name, s.origin, hint)
}

func closest(name string, names []string) string {
	best, bestDist := "", 3
	for _, other := range names {
		if d := editDistance(name, other); d < bestDist {
			best, bestDist = other, d
		}
	}
	return best
}

func (s *Secrets) String() string {
	if s == nil {
		return "no secrets"
	}
	return fmt.Sprintf("%d secrets from %s", len(s.names), s.origin)
}

// GoString keeps %#v from printing the values.
func (s *Secrets) GoString() string { return s.String() }

// LogValue keeps slog from printing the values.
func (s *Secrets) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps encoding/json from printing the values.
func (s *Secrets) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.String())), nil }

// secretRef is one {{ secret "name" }} in a template: where it stands.
type secretRef struct {
	name      string
	line, col int
}

// findSecretRefs lists the secret calls of a parsed template. A call
// must name its secret with a string constant, {{ secret "name" }}, so
// which secrets a config reads is known without running it: check
// reports a missing one where it is written, and the server knows which
// configs carry a secret.
func findSecretRefs(t *template.Template, text string) ([]secretRef, error) {
	var refs []secretRef
	var err error
	proper := map[any]bool{}
	for _, sub := range t.Templates() {
		if sub.Tree == nil || sub.Tree.Root == nil {
			continue
		}
		root := sub.Tree.Root
		walkNodes(root, func(n tparse.Node) {
			cmd, ok := n.(*tparse.CommandNode)
			if !ok || len(cmd.Args) == 0 {
				return
			}
			id, ok := cmd.Args[0].(*tparse.IdentifierNode)
			if !ok || id.Ident != secretFunc {
				return
			}
			if len(cmd.Args) != 2 {
				err = secretCallErr(text, int(id.Pos))
				return
			}
			s, ok := cmd.Args[1].(*tparse.StringNode)
			if !ok {
				err = secretCallErr(text, int(id.Pos))
				return
			}
			if nerr := CheckSecretName(s.Text); nerr != nil {
				line, col := lineCol(text, int(s.Pos))
				err = fmt.Errorf("%d:%d: %w", line, col, nerr)
				return
			}
			proper[id] = true
			line, col := lineCol(text, int(s.Pos))
			refs = append(refs, secretRef{name: s.Text, line: line, col: col})
		})
		// secret anywhere else: as a pipeline's later stage, an argument.
		walkNodes(root, func(n tparse.Node) {
			if id, ok := n.(*tparse.IdentifierNode); ok && id.Ident == secretFunc && !proper[id] && err == nil {
				err = secretCallErr(text, int(id.Pos))
			}
		})
	}
	return refs, err
}

func secretCallErr(text string, pos int) error {
	line, col := lineCol(text, pos)
	return fmt.Errorf(`%d:%d: secret takes one quoted name, as in {{ secret "etcd-token" }}, so check knows which secrets a config reads`, line, col)
}

// SecretNames lists the secrets the profile's config reads, sorted, nil
// when it reads none. Kernel arguments cannot read secrets.
func (p *Profile) SecretNames() []string {
	if p.config == nil || p.config.tmpl == nil {
		return nil
	}
	return p.config.tmpl.secretNames()
}

func (r *runner) secretNames() []string {
	if r == nil || len(r.secrets) == 0 {
		return nil
	}
	var names []string
	for _, ref := range r.secrets {
		names = append(names, ref.name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// checkSecretRefs reports every secret a template reads that the set
// lacks, where the call is written: errors for templates a used profile
// serves, warnings for the rest (nothing boots them yet).
func (v *validator) checkSecretRefs() {
	used := map[string]bool{}
	for _, id := range v.t.groupIDs {
		if p := v.t.Profiles[v.t.Groups[id].Profile]; p != nil && p.config != nil {
			used[p.config.id] = true
		}
	}
	for _, id := range v.t.templateIDs {
		tm := v.t.Templates[id]
		if tm.tmpl == nil {
			continue
		}
		for _, ref := range tm.tmpl.secrets {
			if v.t.secrets.Has(ref.name) || (v.t.secrets != nil && v.t.secrets.lenient) {
				continue
			}
			at := within(Pos{File: tm.file, Line: 1, Col: 1}, ref.line, ref.col)
			if used[id] {
				v.diags.errorf(at, "%v", v.t.secrets.missing(ref.name))
			} else {
				v.diags.warnf(at, "%v (template not used by any group's profile)", v.t.secrets.missing(ref.name))
			}
		}
	}
}

// errSecretValues is what a config that fails only with the secrets'
// real values reports: the real run's own error could quote a value.
var errSecretValues = errors.New(`renders invalid only with the secrets' values (with <secret:name> placeholders it renders): a value breaks the config's syntax; encode it where it is used, e.g. {{ secret "name" | js }} inside a JSON or YAML double-quoted string`)
