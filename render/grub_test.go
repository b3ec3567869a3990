package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/schema"
)

// grubToken is one token of a GRUB script as grub-core/script/yylex.l
// cuts it: an operator or line end, or a word with its quoting removed.
type grubToken struct {
	op      string // ";", "{", "}", "|", "&", "<", ">" or "\n"; "" for a word
	word    string
	expands bool // the word holds a $ expansion: its value is not literal
}

func (t grubToken) String() string {
	switch {
	case t.op != "":
		return fmt.Sprintf("op(%q)", t.op)
	case t.expands:
		return fmt.Sprintf("expanding(%q)", t.word)
	}
	return fmt.Sprintf("%q", t.word)
}

const grubOps = "\n;{}|&<>"

// lexGRUB is a model of GRUB's lexer for what matters to quoting: blanks
// (space, tab) separate words; '#' at the start of a word comments out
// the rest of the line; the characters of grubOps end a word and are
// tokens; in a word, \c is c (\ and a newline vanish), '...' is literal
// to the next ', "..." takes \$ \" \\ as escapes and expands $, and a
// bare $ expands. An unterminated quote or a trailing \ (GRUB reads on,
// asking for more lines) is an error.
func lexGRUB(src string) ([]grubToken, error) {
	var toks []grubToken
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.IndexByte(grubOps, c) >= 0:
			toks = append(toks, grubToken{op: src[i : i+1]})
			i++
		default:
			t, n, err := lexWord(src[i:])
			if err != nil {
				return nil, err
			}
			if n > 0 && (t.word != "" || t.expands || !strings.HasPrefix(src[i:], "\\\n")) {
				toks = append(toks, t)
			}
			i += n
		}
	}
	return toks, nil
}

func lexWord(src string) (grubToken, int, error) {
	var t grubToken
	var b strings.Builder
	i := 0
	for i < len(src) {
		c := src[i]
		if c == ' ' || c == '\t' || strings.IndexByte(grubOps, c) >= 0 {
			break
		}
		switch c {
		case '\\':
			if i+1 == len(src) {
				return t, 0, errors.New("trailing backslash")
			}
			if src[i+1] != '\n' {
				b.WriteByte(src[i+1])
			}
			i += 2
		case '\'':
			j := strings.IndexByte(src[i+1:], '\'')
			if j < 0 {
				return t, 0, errors.New("unterminated single quote")
			}
			b.WriteString(src[i+1 : i+1+j])
			i += j + 2
		case '"':
			i++
			for {
				if i == len(src) {
					return t, 0, errors.New("unterminated double quote")
				}
				d := src[i]
				if d == '"' {
					i++
					break
				}
				if d == '\\' && i+1 < len(src) {
					switch e := src[i+1]; e {
					case '$', '"', '\\':
						b.WriteByte(e)
						i += 2
						continue
					case '\n':
						i += 2
						continue
					}
				}
				if d == '$' {
					t.expands = true
				}
				b.WriteByte(d)
				i++
			}
		case '$':
			// ${name} or $name: the whole variable is part of the word.
			t.expands = true
			j := i + 1
			if j < len(src) && src[j] == '{' {
				if k := strings.IndexByte(src[j:], '}'); k >= 0 {
					j += k + 1
				}
			} else {
				for j < len(src) && (src[j] == '_' || src[j] == '?' || src[j] == '#' || src[j] == '*' || src[j] == '@' ||
					'a' <= src[j]|0x20 && src[j]|0x20 <= 'z' || '0' <= src[j] && src[j] <= '9') {
					j++
				}
			}
			b.WriteString(src[i:j])
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	t.word = b.String()
	return t, i, nil
}

// The model itself, on lines whose meaning to GRUB is known.
func TestLexGRUB(t *testing.T) {
	w := func(s string) grubToken { return grubToken{word: s} }
	op := func(s string) grubToken { return grubToken{op: s} }
	for _, c := range []struct {
		src  string
		want []grubToken
	}{
		{"linux /k a=b", []grubToken{w("linux"), w("/k"), w("a=b")}},
		{"echo a;reboot", []grubToken{w("echo"), w("a"), op(";"), w("reboot")}},
		{`'a'\''b'`, []grubToken{w("a'b")}},
		{`a\ b 'c d'`, []grubToken{w("a b"), w("c d")}},
		{`"a\"b\\c\d"`, []grubToken{w(`a"b\c\d`)}},
		{`"$x" ${y}`, []grubToken{{word: "$x", expands: true}, {word: "${y}", expands: true}}},
		{"a#b # c\nboot", []grubToken{w("a#b"), op("\n"), w("boot")}},
		{"x {y}|z&", []grubToken{w("x"), op("{"), w("y"), op("}"), op("|"), w("z"), op("&")}},
		{"'$(reboot)'", []grubToken{w("$(reboot)")}},
	} {
		got, err := lexGRUB(c.src)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("lexGRUB(%q) = %v, %v; want %v", c.src, got, err, c.want)
		}
	}
	for _, bad := range []string{"'a", `"a`, `a\`} {
		if _, err := lexGRUB(bad); err == nil {
			t.Errorf("lexGRUB(%q): no error", bad)
		}
	}
}

// GRUBQuote(s) is one word worth exactly s, whatever s holds (GRUB's
// lines cannot carry NUL or a newline, nor do its callers give them),
// alone and between other words.
func FuzzGRUBQuote(f *testing.F) {
	for _, s := range []string{"console=ttyS0", "$(reboot)", "'; reboot; '", "{", `"`, "${net_default_mac}", "", "'", `\`, "a b\tc", "# x", "''\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\x00\n") {
			t.Skip()
		}
		q := GRUBQuote(s)
		got, err := lexGRUB("linux " + q + " x")
		if want := []grubToken{{word: "linux"}, {word: s}, {word: "x"}}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("GRUBQuote(%q) = %s lexes to %v, %v; want %v", s, q, got, err, want)
		}
	})
}

// grubTree boots every machine with GRUB; its arguments read what a
// machine says about itself.
var grubTree = fstest.MapFS{
	"profiles/p.yaml": {Data: []byte("loader: grub\nkernel: /assets/k\ninitrd: [/assets/a.gz, /assets/b.gz]\n" +
		"args: [console=ttyS0, \"host={{ .Hostname }}\", \"rack={{ index .Labels \\\"rack\\\" }}\", \"{{ .Serial }}\"]\n")},
	"groups/all.yaml": {Data: []byte("profile: p\n")},
}

// Whatever a machine's values render to, the config is refused or is
// exactly its five lines, each the expected command with literal words,
// and the kernel gets the arguments iPXE would give it. The machine is
// built directly, without the request parser's checks, so this holds
// for render's own defences.
func FuzzWriteGRUB(f *testing.F) {
	snap := mustLoad(f, grubTree)
	for _, s := range []string{"console=ttyS0", "$(reboot)", "'; reboot; '", "{", `"`, "${net_default_mac}", "a b", "x\u0085y", "#", "\\", "a\nb"} {
		f.Add(s, "r1", "SERIAL")
		f.Add("node1", s, s)
	}
	f.Fuzz(func(t *testing.T, host, rack, serial string) {
		m := Machine{MAC: "52:54:00:00:00:01", Hostname: host, Serial: serial, Labels: map[string]string{"rack": rack}}
		g := snap.Lookup(&m)
		var out bytes.Buffer
		err := snap.WriteGRUB(&out, g, &m, nil)
		cmdline, cerr := snap.Cmdline(g, &m)
		if err != nil {
			if cerr == nil && schema.CheckGRUBArg(cmdline) == nil {
				t.Fatalf("refused %q, which GRUB can pass on: %v", cmdline, err)
			}
			if out.Len() > 0 {
				t.Fatalf("wrote %q and failed", out.String())
			}
			return
		}
		if cerr != nil {
			t.Fatalf("iPXE refuses %+v (%v), GRUB took it", m, cerr)
		}
		toks, lerr := lexGRUB(out.String())
		if lerr != nil {
			t.Fatalf("config does not lex: %v\n%s", lerr, out.String())
		}
		var want []grubToken
		line := func(words ...string) {
			for _, w := range words {
				want = append(want, grubToken{word: w})
			}
			want = append(want, grubToken{op: "\n"})
		}
		line() // the comment
		line("echo", "pxeops: booting all (p)")
		line(append([]string{"linux", "/assets/k"}, strings.FieldsFunc(cmdline, isKernelSpace)...)...)
		line("initrd", "/assets/a.gz", "/assets/b.gz")
		line("boot")
		if !slices.Equal(toks, want) {
			t.Fatalf("config lexes to\n%v\nwant\n%v\nconfig:\n%s", toks, want, out.String())
		}
		for _, tk := range toks[slices.Index(toks, grubToken{word: "linux"}):] {
			if tk.op == "\n" {
				break
			}
			if strings.ContainsAny(tk.word, " \t") {
				t.Fatalf("word %q holds a blank: GRUB would wrap it in double quotes on the kernel command line", tk.word)
			}
		}
	})
}

// isKernelSpace is where the kernel splits its command line (lib/ctype.c's
// ASCII spaces; newline and CR are refused before).
func isKernelSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\v' || r == '\f' }

func TestLoader(t *testing.T) {
	snap := mustLoad(t, fstest.MapFS{
		"profiles/ipxe.yaml":  {Data: []byte(testProfile)},
		"profiles/grub.yaml":  {Data: []byte("loader: grub\n" + testProfile)},
		"groups/node1.yaml":   {Data: []byte("profile: ipxe\nloader: grub\nselector: {mac: \"52:54:00:00:00:01\"}\n")},
		"groups/node2.yaml":   {Data: []byte("profile: grub\nloader: ipxe\nselector: {mac: \"52:54:00:00:00:02\"}\n")},
		"groups/arm.yaml":     {Data: []byte("profile: grub\nselector: {arch: arm64}\n")},
		"groups/rack.yaml":    {Data: []byte("profile: grub\nselector: {rack: r1}\n")},
		"groups/default.yaml": {Data: []byte("profile: ipxe\n")},
	})
	var got strings.Builder
	for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:09"} {
		for _, arch := range []string{"", "x86_64", "arm64"} {
			fmt.Fprintf(&got, "%s %-6s %s\n", mac, arch, snap.Loader(mac, arch))
		}
	}
	// A mac and an arch selector are one key each: the lower id wins
	// (arm < node2), so node2's ipxe holds only where the arch is not
	// arm64. rack is unknown at DHCP time: its group never matches there.
	want := `52:54:00:00:00:01        grub
52:54:00:00:00:01 x86_64 grub
52:54:00:00:00:01 arm64  grub
52:54:00:00:00:02        ipxe
52:54:00:00:00:02 x86_64 ipxe
52:54:00:00:00:02 arm64  grub
52:54:00:00:00:09        ipxe
52:54:00:00:00:09 x86_64 ipxe
52:54:00:00:00:09 arm64  grub
`
	if got.String() != want {
		t.Errorf("Loader:\n%s\nwant\n%s", got.String(), want)
	}
	empty := mustLoad(t, fstest.MapFS{"profiles/p.yaml": {Data: []byte(testProfile)}, "groups/g.yaml": {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\"}\n")}})
	if l := empty.Loader("52:54:00:00:00:02", "x86_64"); l != LoaderIPXE {
		t.Errorf("no group matches: loader %q, want ipxe", l)
	}
	if n := testing.AllocsPerRun(100, func() { snap.Loader("52:54:00:00:00:09", "arm64") }); n != 0 {
		t.Errorf("Loader allocates %v times", n)
	}
}

func TestWriteGRUB(t *testing.T) {
	snap := mustLoad(t, fstest.MapFS{
		"profiles/remote.yaml": {Data: []byte("kernel: http://mirror.test/vmlinuz\n")},
		"profiles/p.yaml":      {Data: []byte("loader: grub\nkernel: /assets/k\nargs: [\"mac={{ .MAC }}\", \"host={{ .Hostname }}\"]\n")},
		"groups/remote.yaml":   {Data: []byte("profile: remote\nselector: {mac: \"52:54:00:00:00:09\"}\n")},
		"groups/one.yaml":      {Data: []byte("profile: p\nselector: {mac: \"52:54:00:00:00:01\", hostname: one}\n")},
		"groups/any.yaml":      {Data: []byte("profile: p\n")},
	})
	write := func(m *Machine, edit func(string) string) (string, error) {
		var b bytes.Buffer
		err := snap.WriteGRUB(&b, snap.Lookup(m), m, edit)
		if err != nil && b.Len() > 0 {
			t.Errorf("failed after writing %q", b.String())
		}
		return b.String(), err
	}
	// Validation keeps remote kernels from GRUB groups; WriteGRUB still
	// refuses one rather than write a path GRUB cannot fetch.
	if _, err := write(&Machine{MAC: "52:54:00:00:00:09"}, nil); err == nil || !strings.Contains(err.Error(), "http://mirror.test/vmlinuz is not under http://pxe.test:8080/assets/") {
		t.Errorf("remote kernel: %v", err)
	}
	if _, err := write(&Machine{MAC: "52:54:00:00:00:02", Hostname: `a"b`}, nil); !errors.Is(err, ErrGRUBArg) || !strings.Contains(err.Error(), "args[1]") {
		t.Errorf("quote from data: %v, want ErrGRUBArg at args[1]", err)
	}
	if _, err := write(&Machine{MAC: "52:54:00:00:00:02", Hostname: "a\nreboot"}, nil); !errors.Is(err, ErrUnsafeArg) {
		t.Errorf("newline from data: %v, want ErrUnsafeArg", err)
	}
	// one's selector fixes its arguments: rendered once, cached before
	// edit, edited at every write.
	one := &Machine{MAC: "52:54:00:00:00:01", Hostname: "one"}
	first, err := write(one, func(s string) string { return s + "# 1\n" })
	if err != nil || !strings.Contains(first, "linux '/assets/k' 'mac=52:54:00:00:00:01' 'host=one'\nboot\n# 1\n") {
		t.Fatalf("first: %v\n%s", err, first)
	}
	if snap.Lookup(one).grub[0].Load() == nil {
		t.Error("one's config not cached")
	}
	second, _ := write(one, func(s string) string { return strings.ReplaceAll(s, "one", "ONE") })
	if !strings.Contains(second, "'host=ONE'") || strings.Contains(second, "# 1") {
		t.Errorf("edit applied to the cached text: %s", second)
	}
	if _, err := write(&Machine{MAC: "52:54:00:00:00:03", Hostname: "x"}, nil); err != nil || snap.Lookup(&Machine{MAC: "52:54:00:00:00:03"}).grub[0].Load() != nil {
		t.Errorf("any's arguments read the machine, yet its config is cached (err %v)", err)
	}
}
