package render

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/pxeops/pxeops/schema"
)

// The loaders a machine can run first (Group.Loader, Snapshot.Loader).
const (
	LoaderIPXE = schema.LoaderIPXE
	LoaderGRUB = schema.LoaderGRUB
)

// ErrGRUBArg means a kernel argument rendered into something GRUB would
// hand the kernel changed (a quote, a backslash, an iPXE ${...} setting);
// the GRUB config is not served. Line breaks and NULs are ErrUnsafeArg,
// as for iPXE.
var ErrGRUBArg = schema.ErrGRUBArg

// Loader is what group g's machines run first (group's field, else
// profile's, else ipxe).
func (g *Group) Loader() string { return g.loader }

// Loader is what a machine known only by MAC (lowercase colon form, as
// Lookup takes) and arch ("" BIOS or unknown, "x86_64", "arm64") gets
// first at DHCP time: the loader of the group Lookup gives it,
// LoaderIPXE when none matches. It does not allocate: it runs for every
// DHCP packet.
func (s *Snapshot) Loader(mac, arch string) string {
	m := Machine{MAC: mac, Arch: arch}
	if g := s.Lookup(&m); g != nil {
		return g.loader
	}
	return LoaderIPXE
}

// GRUBQuote quotes s as one GRUB word whose value is exactly s: single
// quotes, inside which GRUB takes every character literally; a single
// quote in s closes them, is written escaped (\') and opens new ones.
func GRUBQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// grubFiles precomputes the linux and initrd lines of f, profile id's.
// GRUB fetches over TFTP from its root, where pxeops serves what it
// serves over HTTP under the same path, so the lines hold the paths of
// f's URLs under ServerURL.
func (s *Snapshot) grubFiles(f *BootFiles, id string) {
	local := func(u string) (string, bool) {
		p, ok := strings.CutPrefix(u, s.ServerURL)
		return p, ok && strings.HasPrefix(p, "/assets/")
	}
	kernel, ok := local(f.Kernel)
	if !ok {
		f.grubErr = fmt.Errorf("profile %s: kernel %s is not under %s/assets/: GRUB fetches over TFTP only", id, f.Kernel, s.ServerURL)
		return
	}
	f.grubLinux = "linux " + GRUBQuote(kernel)
	if len(f.Initrds) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("initrd")
	for _, in := range f.Initrds {
		p, ok := local(in.URL)
		if !ok {
			f.grubErr = fmt.Errorf("profile %s: initrd %s is not under %s/assets/: GRUB fetches over TFTP only", id, in.URL, s.ServerURL)
			return
		}
		b.WriteString(" " + GRUBQuote(p))
	}
	f.grubInitrd = b.String()
}

// WriteGRUB writes the GRUB config that boots machine m as group g. It is
// built in full before anything is written, as WriteScript's script is.
// edit, when non-nil, is applied to the finished text before it is
// written (the server adds access tokens to config URLs with it); what is
// cached for the group is the text before edit.
//
// The kernel arguments are rendered as for iPXE, then split at blanks
// into one single-quoted word each: GRUB's linux command would wrap a
// word holding a space in double quotes on the kernel command line, which
// the kernel reads as one argument where iPXE gave it several. Arguments
// GRUB would change are refused with ErrGRUBArg.
func (s *Snapshot) WriteGRUB(w io.Writer, g *Group, m *Machine, edit func(string) string) error {
	f := g.Profile.Boot(m.MAC)
	cache := &g.grub[f.side()]
	out := cache.Load()
	if out == nil {
		text, err := s.grubConfig(g, m, f)
		if err != nil {
			return err
		}
		if g.sameScript {
			cache.Store(&text)
		}
		out = &text
	}
	if edit == nil {
		_, err := w.Write(*out)
		return err
	}
	_, err := io.WriteString(w, edit(string(*out)))
	return err
}

func (s *Snapshot) grubConfig(g *Group, m *Machine, f *BootFiles) ([]byte, error) {
	p := g.Profile
	if p.Local() {
		return localGRUB(s.Revision, g), nil
	}
	if f.grubErr != nil {
		return nil, f.grubErr
	}
	args := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(args)
	args.Reset()
	if err := writeArgs(args, g, m, f, false, func(arg []byte) error { return schema.CheckGRUBArg(string(arg)) }); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	grubHeader(&b, s.Revision, g)
	b.WriteString("echo " + GRUBQuote("pxeops: booting "+g.ID+" ("+p.ID+")") + "\n")
	b.WriteString(f.grubLinux)
	for _, f := range bytes.FieldsFunc(args.Bytes(), isBlank) {
		b.WriteString(" " + GRUBQuote(string(f)))
	}
	b.WriteByte('\n')
	if f.grubInitrd != "" {
		b.WriteString(f.grubInitrd + "\n")
	}
	b.WriteString("boot\n")
	return b.Bytes(), nil
}

// isBlank reports the bytes that separate kernel arguments for iPXE and
// the kernel alike. Not unicode.IsSpace (strings.Fields): the kernel does
// not split at U+0085 and most other non-ASCII spaces, so neither may we.
func isBlank(r rune) bool {
	return r == ' ' || r == '\t' || r == '\v' || r == '\f'
}

// grubHeader writes the comment line every GRUB config starts with.
func grubHeader(b *bytes.Buffer, revision string, g *Group) {
	// The revision comes from outside the tree; a line break in it would
	// end the comment.
	rev := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, revision)
	fmt.Fprintf(b, "# pxeops: group %s, profile %s", g.ID, g.Profile.ID)
	if rev != "" {
		b.WriteString(", revision " + rev)
	}
	b.WriteByte('\n')
}
