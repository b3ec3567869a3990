// Package render turns a validated tree into an immutable Snapshot: the
// index that answers "which group does this machine get" and everything
// precomputed that a boot request would otherwise redo. It writes every
// answer a machine gets (script, config, /metadata, the Pixiecore body)
// and is the servers' one view of the model: they import render, never
// schema (request.go names what they need from it).
package render

import (
	"cmp"
	"context"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pxeops/pxeops/schema"
)

// Options are the facts a snapshot needs that do not come from the tree.
type Options struct {
	// ServerURL is where machines reach pxeops over HTTP; asset paths and
	// {{ .ServerURL }} are built from it.
	ServerURL string
	// ConfigServerURL is {{ .ConfigServerURL }}: where the booted OS
	// fetches its config (the HTTPS URL); empty: ServerURL.
	ConfigServerURL string
	// Revision names the source revision (a commit, a tree checksum).
	Revision string
	// Cache, when set, carries unchanged work over from the previous
	// load; the daemon sets it, one-shot commands need not.
	Cache *schema.Cache
	// Secrets are what configs' {{ secret "name" }} read: values, masked
	// values (render) or names alone (check in CI); nil: none.
	Secrets *schema.Secrets
}

// Load is the one path from a tree to a snapshot: `pxeops check`,
// `pxeops render` and the daemon's reload all call it, so CI and
// production never disagree. The snapshot is nil when diags has errors.
//
// It stops when ctx ends, with a transient error.
func Load(ctx context.Context, fsys fs.FS, opts Options) (*Snapshot, schema.Diagnostics) {
	t, diags := schema.LoadWith(ctx, fsys, opts.Cache, opts.Secrets)
	if diags.Errors() > 0 {
		return nil, diags
	}
	return New(t, opts), diags
}

// Snapshot is a rendered tree. Nothing in it changes after New returns, so
// any number of requests may read it while a newer one is being built.
type Snapshot struct {
	Revision  string
	Digest    string // sha256 over the tree's meaning, not its formatting
	ServerURL string
	// ConfigServerURL is where the booted OS fetches its config
	// ({{ .ConfigServerURL }}): the HTTPS URL, or ServerURL.
	ConfigServerURL string
	Tree            *schema.Tree // the validated tree; read-only, like the rest

	groups   []*Group // by precedence: most selector keys first, then id
	profiles map[string]*Profile
	// Each group with a mac, uuid, serial or hostname sits in the bucket of
	// the first of those it has; the rest are scanned in precedence order.
	byMAC, byUUID, bySerial, byHostname map[string][]*Group
	scan                                []*Group
	// For MayServe: whether some group without a mac selector could match
	// a machine of any arch, or of these arches.
	macFreeAnyArch bool
	macFreeArches  map[string]bool
}

// Group is a group ready for matching.
type Group struct {
	ID      string
	Source  *schema.Group
	Profile *Profile
	Keys    []string // selector keys, sorted
	rank    int      // position in precedence order; lower wins
	sel     []kv     // selector, in Keys order
	data    schema.TemplateData

	// When every argument reads only what the selector fixes (a MAC
	// group's {{ .MAC }}) or group-level data, all machines of the group
	// get the same script: the first request renders it, the rest reuse it.
	// The same holds for the config, judged by its template alone.
	sameScript, sameConfig bool
	// By side (BootFiles.side): a rollout's machines get other files
	// and may see another .Image.Version.
	script, config, grub [2]atomic.Pointer[[]byte]
	loader               string // LoaderIPXE or LoaderGRUB
}

type kv struct{ key, value string }

// Profile is a profile with its boot script precomputed around the
// arguments that vary by machine.
type Profile struct {
	ID     string
	Source *schema.Profile
	// BootFiles are the image's version's files (or the profile's own
	// kernel's): what every machine gets but those on the side of the
	// image's rollout, which get rolloutFiles (Boot).
	BootFiles
	rollout      *Rollout
	rolloutFiles *BootFiles

	// Secrets names the secrets the profile's config reads, sorted; nil
	// when it reads none. A config that reads one must only go to the
	// machine it is for.
	Secrets []string
}

// BootFiles are one version's kernel and initrds, with the script and
// GRUB lines around them precomputed.
type BootFiles struct {
	// Version is the image version they are; "" when the profile names
	// its kernel itself.
	Version   string
	OnRollout bool     // they are the image's rollout's, not its version's
	Kernel    string   // absolute URL
	Initrds   []Initrd // absolute URLs with the names the kernel finds them by
	head      string   // "#!ipxe\nkernel <url> initrd=<name>..."
	tail      string   // "\ninitrd --name ...\nboot\n"
	// The GRUB config's "linux <path>" and "initrd <path>..." lines
	// (GRUB fetches root-relative paths from its TFTP root), or why there
	// are none: a file not under the server's /assets/.
	grubLinux, grubInitrd string
	grubErr               error
}

// Initrd is one initrd as iPXE loads it.
type Initrd struct {
	Name string
	URL  string
}

// New renders a tree that schema.Load accepted.
func New(t *schema.Tree, opts Options) *Snapshot {
	s := &Snapshot{
		Revision:        opts.Revision,
		Digest:          t.Digest(),
		ServerURL:       strings.TrimSuffix(opts.ServerURL, "/"),
		ConfigServerURL: strings.TrimSuffix(cmp.Or(opts.ConfigServerURL, opts.ServerURL), "/"),
		Tree:            t,
		profiles:        map[string]*Profile{},
		byMAC:           map[string][]*Group{},
		byUUID:          map[string][]*Group{},
		bySerial:        map[string][]*Group{},
		byHostname:      map[string][]*Group{},
	}
	for id, p := range t.Profiles {
		s.profiles[id] = s.profile(p)
	}
	for _, id := range t.GroupIDs() {
		g := t.Groups[id]
		p := s.profiles[g.Profile]
		rg := &Group{ID: id, Source: g, Profile: p, Keys: g.SelectorKeys()}
		for _, k := range rg.Keys {
			rg.sel = append(rg.sel, kv{k, g.Selector[k]})
		}
		rg.data = g.Data(p.Source, s.ServerURL)
		if opts.ConfigServerURL != "" {
			rg.data.ConfigServerURL = strings.TrimSuffix(opts.ConfigServerURL, "/")
		}
		rg.loader = schema.EffectiveLoader(g, p.Source)
		rg.sameScript = argsFixedBySelector(p.Source, g.Selector)
		refs, ok := p.Source.ConfigRefs()
		rg.sameConfig = ok && fixedBySelector(refs, g.Selector)
		s.groups = append(s.groups, rg)
	}
	slices.SortFunc(s.groups, func(a, b *Group) int {
		return cmp.Or(cmp.Compare(len(b.sel), len(a.sel)), cmp.Compare(a.ID, b.ID))
	})
	s.macFreeArches = map[string]bool{}
	for i, g := range s.groups {
		g.rank = i
		if sel := g.Source.Selector; sel[schema.KeyMAC] == "" {
			if a := sel[schema.KeyArch]; a != "" {
				s.macFreeArches[a] = true
			} else {
				s.macFreeAnyArch = true
			}
		}
		switch sel := g.Source.Selector; {
		case sel[schema.KeyMAC] != "":
			s.byMAC[sel[schema.KeyMAC]] = append(s.byMAC[sel[schema.KeyMAC]], g)
		case sel[schema.KeyUUID] != "":
			s.byUUID[sel[schema.KeyUUID]] = append(s.byUUID[sel[schema.KeyUUID]], g)
		case sel[schema.KeySerial] != "":
			s.bySerial[sel[schema.KeySerial]] = append(s.bySerial[sel[schema.KeySerial]], g)
		case sel[schema.KeyHostname] != "":
			s.byHostname[sel[schema.KeyHostname]] = append(s.byHostname[sel[schema.KeyHostname]], g)
		default:
			s.scan = append(s.scan, g)
		}
	}
	return s
}

var initrdName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

func (s *Snapshot) profile(p *schema.Profile) *Profile {
	rp := &Profile{ID: p.ID(), Source: p, Secrets: p.SecretNames()}
	if p.Local() {
		rp.head = localScript(rp.ID)
		return rp
	}
	im := p.ResolvedImage()
	if im == nil {
		s.bootFiles(&rp.BootFiles, rp.ID, p.Kernel, p.Initrd)
		return rp
	}
	s.bootFiles(&rp.BootFiles, rp.ID, im.Kernel.URL, fileURLs(im.Initrd))
	rp.Version = im.Version
	if r := im.Rollout; r != nil {
		rp.rollout = &Rollout{Image: im.ID(), Pinned: im.Version, Version: r.Version, Share: r.Share,
			prefix: im.ID() + "\n" + r.Version + "\n"}
		rp.rolloutFiles = &BootFiles{Version: r.Version, OnRollout: true}
		s.bootFiles(rp.rolloutFiles, rp.ID, r.Kernel.URL, fileURLs(r.Initrd))
	}
	return rp
}

func fileURLs(fs []schema.File) []string {
	urls := make([]string, len(fs))
	for i, f := range fs {
		urls[i] = f.URL
	}
	return urls
}

// bootFiles fills f from a kernel's and initrds' URLs (absolute or under
// the server) for profile id.
func (s *Snapshot) bootFiles(f *BootFiles, id, kernel string, initrds []string) {
	f.Kernel = s.absolute(kernel)
	// Under UEFI the kernel's EFI stub finds initrds by name, so each gets
	// one (its file name where that is unique and plain) and the command
	// line names it; BIOS boots ignore the extra argument.
	seen := map[string]bool{}
	var head, tail strings.Builder
	head.WriteString("#!ipxe\nkernel " + f.Kernel)
	for i, u := range initrds {
		name := path.Base(u)
		if !initrdName.MatchString(name) || seen[name] {
			name = "initrd" + strconv.Itoa(i)
		}
		seen[name] = true
		f.Initrds = append(f.Initrds, Initrd{Name: name, URL: s.absolute(u)})
		head.WriteString(" initrd=" + name)
		tail.WriteString("\ninitrd --name " + name + " " + s.absolute(u))
	}
	tail.WriteString("\nboot\n")
	f.head, f.tail = head.String(), tail.String()
	s.grubFiles(f, id)
}

// argsFixedBySelector reports whether every kernel argument of p reads
// only what selector sel fixes, or group-level data.
func argsFixedBySelector(p *schema.Profile, sel map[string]string) bool {
	for i := range p.Args {
		refs, ok := p.ArgRefs(i)
		if !ok || !fixedBySelector(refs, sel) {
			return false
		}
	}
	return true
}

// fixedBySelector reports whether the template data fields refs are the
// same for every machine a group with selector sel matches.
func fixedBySelector(refs [][]string, sel map[string]string) bool {
	for _, ref := range refs {
		switch ref[0] {
		case "Metadata", "Group", "Profile", "Image", "ServerURL", "ConfigServerURL":
		case "ConfigURL", "InstalledURL": // these URLs name the MAC and the selector's values
			if sel[schema.KeyMAC] == "" {
				return false
			}
		case "MAC", "UUID", "Hostname", "Serial", "Arch":
			if sel[strings.ToLower(ref[0])] == "" {
				return false
			}
		case "Labels":
			if len(ref) < 2 || sel[ref[1]] == "" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (s *Snapshot) absolute(u string) string {
	if strings.HasPrefix(u, "/") {
		return s.ServerURL + u
	}
	return u
}
