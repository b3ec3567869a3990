package schema

import ()

// Tree is a decoded and validated config repository: the desired boot
// state of a fleet at one revision. Maps are keyed by object id (the file
// name without .yaml; for templates, the file name).
type Tree struct {
	Settings  Settings             `json:"settings"`
	Profiles  map[string]*Profile  `json:"profiles"`
	Groups    map[string]*Group    `json:"groups"`
	Images    map[string]*Image    `json:"images"`
	Templates map[string]*Template `json:"templates"`

	digest  string
	secrets *Secrets // what the templates' {{ secret }} read; nil: none given
	// ids in name order, as read; iterating them keeps output stable
	// without sorting map keys again and again.
	profileIDs, groupIDs, imageIDs, templateIDs []string
}

// ImageIDs lists the image ids in name order.
func (t *Tree) ImageIDs() []string { return t.imageIDs }

// GroupIDs lists the group ids in name order.
func (t *Tree) GroupIDs() []string { return t.groupIDs }

// Digest is "sha256:<hex>" over the tree's meaning, not its formatting:
// each object is hashed in its canonical form (decoded, normalised, as
// JSON with sorted keys), then the kinds, ids and those hashes in order.
// File order, comments, quoting and spellings such as 52-54-00-... for
// 52:54:00:... do not change it.
func (t *Tree) Digest() string { return t.digest }

// Profile says what to boot.
type Profile struct {
	Description string     `yaml:"description" json:"description,omitempty" doc:"Free text, shown by render and /status."`
	Image       string     `yaml:"image" json:"image,omitempty" doc:"Id of images/<id>.yaml supplying kernel and initrd. Use either image or kernel."`
	Kernel      string     `yaml:"kernel" json:"kernel,omitempty" doc:"Kernel URL: http(s)://... or a path under /assets/. Use either image or kernel."`
	Initrd      []string   `yaml:"initrd" json:"initrd,omitempty" doc:"Initrd URLs, same forms as kernel. Only with kernel."`
	Args        []string   `yaml:"args" json:"args,omitempty" doc:"Kernel arguments, one per item; Go templates over the template data. No newlines."`
	Config      *ConfigRef `yaml:"config" json:"config,omitempty" doc:"The config served at /config."`
	Loader      string     `yaml:"loader" json:"loader,omitempty" doc:"What the machine runs first: ipxe (default) or grub (shim and GRUB, for Secure Boot machines that trust only Microsoft's keys, and arm64 without iPXE). GRUB fetches kernel and initrds over TFTP, so they must be paths under /assets/." default:"ipxe"`
	Boot        string     `yaml:"boot" json:"boot,omitempty" doc:"network: boot the kernel and initrds over the network; local: leave pxeops for the machine's disk (iPXE under BIOS: sanboot of drive 0x80, else exit to the firmware's next boot entry; GRUB: exit). A local profile has no image, kernel, initrd, args or config. Pair it with selector state: installed." default:"network"`

	Metadata map[string]any `yaml:"metadata" json:"metadata,omitempty" doc:"Free-form values for every group booting this profile, under the group's own metadata and over pxeops.yaml's (.Metadata)."`

	meta
	args   []*runner // nil entries for arguments without template actions
	image  *Image    // resolved Image reference
	config *Template // resolved Config.Template reference
	// secrets are the tree's, what the config's {{ secret }} reads.
	secrets *Secrets
	// metadata is pxeops.yaml's metadata merged under Metadata.
	metadata map[string]any
}

// ResolvedImage is the image the profile boots, nil when it names a kernel.
func (p *Profile) ResolvedImage() *Image { return p.image }

// ConfigType is the type of the profile's config, "" when it has none.
func (p *Profile) ConfigType() string {
	if p.Config == nil {
		return ""
	}
	return p.Config.Type
}

// The loaders a machine can run first (Profile.Loader, Group.Loader).
const (
	LoaderIPXE = "ipxe"
	LoaderGRUB = "grub"
)

// The ways a profile boots (Profile.Boot).
const (
	BootNetwork = "network"
	BootLocal   = "local"
)

// Local reports whether the profile boots the machine's own disk.
func (p *Profile) Local() bool { return p.Boot == BootLocal }

// EffectiveLoader is what the machines of group g run first when it boots
// profile p: the group's loader, else the profile's, else iPXE.
func EffectiveLoader(g *Group, p *Profile) string {
	if g != nil && g.Loader != "" {
		return g.Loader
	}
	if p != nil && p.Loader != "" {
		return p.Loader
	}
	return LoaderIPXE
}

// ConfigRef names the template served to a machine at /config.
type ConfigRef struct {
	Template string `yaml:"template" json:"template" doc:"File under templates/, e.g. worker.ign.yaml. Required."`
	Type     string `yaml:"type" json:"type" doc:"ignition (rendered YAML or JSON, served as JSON), butane (rendered, then translated to Ignition JSON), cloud-config, or raw. Ignition 3.x and Butane output are validated in check." default:"raw"`
}

// Group says which machines get which profile.
type Group struct {
	Description string            `yaml:"description" json:"description,omitempty" doc:"Free text, shown by render and /status."`
	Profile     string            `yaml:"profile" json:"profile" doc:"Id of profiles/<id>.yaml. Required."`
	Selector    map[string]string `yaml:"selector" json:"selector,omitempty" doc:"All keys must match: mac, uuid, hostname, serial, arch, state, or any label. state: installed matches a machine whose installer reported completion (POST /v1/machines/<mac>/installed; the server keeps it, a request cannot set it). The matching group with the most keys wins, so {mac: X, state: installed} beats {mac: X}. Empty or absent: the default group (at most one)."`
	Metadata    map[string]any    `yaml:"metadata" json:"metadata,omitempty" doc:"Free-form values, visible to templates as .Metadata, over the profile's and pxeops.yaml's metadata (mappings merge key by key; other values replace)."`
	Loader      string            `yaml:"loader" json:"loader,omitempty" doc:"What the group's machines run first, ipxe or grub, overriding the profile's loader. Absent: the profile's."`

	meta
	keys   []string // selector keys, sorted
	selKey string   // canonical selector, "k=v k=v"
}

// SelectorKeys lists the group's selector keys, sorted.
func (g *Group) SelectorKeys() []string { return g.keys }

// Image is an OS image pinned to a version; the updater edits these files.
type Image struct {
	OS      string   `yaml:"os" json:"os" doc:"flatcar, coreos or linux. Required."`
	Channel string   `yaml:"channel" json:"channel,omitempty" doc:"Release channel, e.g. stable, beta, alpha. Required with update: omaha."`
	Arch    string   `yaml:"arch" json:"arch" doc:"amd64 or arm64." default:"amd64"`
	Version string   `yaml:"version" json:"version" doc:"Release version, e.g. 4081.2.0. Required."`
	Kernel  File     `yaml:"kernel" json:"kernel" doc:"The kernel. Required."`
	Initrd  []File   `yaml:"initrd" json:"initrd" doc:"The initrds, in load order. At least one."`
	Update  string   `yaml:"update" json:"update,omitempty" doc:"omaha: the updater tracks this image. Absent: pinned by hand."`
	Rollout *Rollout `yaml:"rollout" json:"rollout,omitempty" doc:"A release served to a share of the machines beside version, for a rollout in stages; finishing it is a commit that moves version up and removes rollout."`

	meta
}

// File is one downloadable piece of an image.
type File struct {
	URL    string `yaml:"url" json:"url" doc:"http(s)://... or a path under /assets/. Required."`
	SHA256 string `yaml:"sha256" json:"sha256,omitempty" doc:"Hex SHA-256 of the file; a file that does not match is never served or mirrored."`
}

// Settings is the optional pxeops.yaml.
type Settings struct {
	Omaha OmahaSettings `yaml:"omaha" json:"omaha" doc:"How the updater follows release channels."`
	// AllowEmpty is off by default because an emptied tree is far more
	// often a mistake (a moved folder, a wrong --path) than a wish, and
	// serving it turns every machine away at once.
	AllowEmpty bool `yaml:"allowEmpty" json:"allowEmpty,omitempty" doc:"Accept a tree without groups (no machine boots from it) as valid, with a warning. Without it such a tree is an error and the server keeps the last good one." default:"false"`

	Metadata map[string]any `yaml:"metadata" json:"metadata,omitempty" doc:"Free-form values shared by every group, under the profile's and the group's own metadata (.Metadata)."`

	Discovery DiscoverySettings `yaml:"discovery" json:"discovery" doc:"How PXE clients that no group matches are proposed as group files (pxeops discover)."`

	meta
}

// OmahaSettings configure the updater. Defaults follow Flatcar.
type OmahaSettings struct {
	Server   string      `yaml:"server" json:"server" doc:"Upstream Omaha endpoint." default:"https://public.update.flatcar-linux.net/v1/update/"`
	Interval Duration    `yaml:"interval" json:"interval" doc:"Time between checks, jittered; at least 1m." default:"1h"`
	Mirror   string      `yaml:"mirror" json:"mirror" doc:"Template of the release directory URL; data: .Channel .Arch .Board .Version .Image." default:"https://{{ .Channel }}.release.flatcar-linux.net/{{ .Board }}/{{ .Version }}/"`
	Files    MirrorFiles `yaml:"files" json:"files" doc:"File names under the mirror URL."`
	Keyring  string      `yaml:"keyring" json:"keyring,omitempty" doc:"Armored OpenPGP keyring, a path in this repository (air-gapped sites). Absent: the vendor's key fetched from keyringURL."`
	Branch   string      `yaml:"branch" json:"branch" doc:"Template of the branch updates are pushed to; data: .Image." default:"pxeops/update-{{ .Image }}"`
	Proxy    bool        `yaml:"proxy" json:"proxy" doc:"Forward host update checks upstream too (corepxe mode); a newer upstream version starts a mirroring pass at once." default:"false"`
	// The fields below are pxeops' additions to the design's settings.
	Passthrough  bool            `yaml:"passthrough" json:"passthrough" doc:"With proxy: give hosts the upstream answer (when it arrives within 2s) instead of noupdate." default:"false"`
	Sync         bool            `yaml:"sync" json:"sync" doc:"Run the updater inside pxeops serve every interval; pxeops omaha sync runs it on demand either way." default:"false"`
	Fallback     bool            `yaml:"fallback" json:"fallback" doc:"When the Omaha server fails, read the channel's current/version.txt under the mirror instead." default:"false"`
	URLs         string          `yaml:"urls" json:"urls" doc:"assets: mirrored images are served from /assets/<sha256>/<file>; upstream: images keep the mirror's URLs, pinned by sha256." default:"assets"`
	Fingerprints []string        `yaml:"fingerprints" json:"fingerprints,omitempty" doc:"Primary key fingerprints (40 hex digits) allowed to sign images. Absent: Flatcar's key for os flatcar, CoreOS's for os coreos."`
	Rollout      RolloutSettings `yaml:"rollout" json:"rollout" doc:"How the updater rolls a new release out in stages."`
	// KeyringURL defaults to Flatcar's published key; os: coreos images
	// keep the CoreOS key built into pxeops unless it is set.
	KeyringURL string `yaml:"keyringURL" json:"keyringURL" doc:"Where the vendor publishes its armored public key (https://), used without keyring: fetched, used only if its primary key is one of fingerprints, kept in the assets dir and fetched again daily or for a subkey it lacks. Not used for os coreos unless set: CoreOS's key is built into pxeops." default:"https://www.flatcar.org/security/image-signing-key/Flatcar_Image_Signing_Key.asc"`
}

// Legacy CoreOS defaults, used for images with os: coreos where
// pxeops.yaml leaves the field unset.
const (
	coreosServer = "https://public.update.core-os.net/v1/update/"
	coreosMirror = "https://{{ .Channel }}.release.core-os.net/{{ .Board }}/{{ .Version }}/"
	coreosKernel = "coreos_production_pxe.vmlinuz"
	coreosInitrd = "coreos_production_pxe_image.cpio.gz"
)

// OmahaFor returns the updater settings for images of operating system
// osName: legacy CoreOS gets CoreOS's server, mirror and file names
// wherever pxeops.yaml does not name them.
func (s *Settings) OmahaFor(osName string) OmahaSettings {
	o := s.Omaha
	if osName != "coreos" {
		return o
	}
	for _, f := range []struct {
		path   string
		field  *string
		coreos string
	}{
		{"omaha.server", &o.Server, coreosServer},
		{"omaha.mirror", &o.Mirror, coreosMirror},
		{"omaha.files.kernel", &o.Files.Kernel, coreosKernel},
		{"omaha.files.initrd", &o.Files.Initrd, coreosInitrd},
		{"omaha.keyringURL", &o.KeyringURL, ""}, // the built-in key
	} {
		if !s.has(f.path) {
			*f.field = f.coreos
		}
	}
	return o
}

// MirrorFiles names an image's files under the mirror URL.
type MirrorFiles struct {
	Kernel string `yaml:"kernel" json:"kernel" doc:"Kernel file name." default:"flatcar_production_pxe.vmlinuz"`
	Initrd string `yaml:"initrd" json:"initrd" doc:"Initrd file name." default:"flatcar_production_pxe_image.cpio.gz"`
}

// Template is a file under templates/, parsed once.
type Template struct {
	Source string `json:"source"`

	meta
	tmpl *runner
}

// meta is what every object knows about where it came from.
type meta struct {
	id    string
	file  string
	sum   [32]byte // sha256 of the file, naming its content in the cache
	canon [32]byte // sha256 of the object's canonical JSON, for the digest
	pos   map[string]Pos
	bad   map[string]bool // values the decoder rejected
}

// ID is the object's id: its file name without .yaml.
func (m *meta) ID() string { return m.id }

// File is the object's path relative to the tree root.
func (m *meta) File() string { return m.file }

// Pos is where the value at path (e.g. "selector.mac", "initrd[0].url")
// was written; the start of the file when it was not written.
func (m *meta) Pos(path string) Pos {
	if p, ok := m.pos[path]; ok {
		return p
	}
	return Pos{File: m.file, Line: 1, Col: 1}
}

func (m *meta) has(path string) bool { _, ok := m.pos[path]; return ok }
