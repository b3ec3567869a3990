package updater

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/propose"
)

// Updater runs passes of the image updater: for each image with
// update: omaha, ask the update service, mirror and verify a newer
// release, edit the image file and propose it on a branch.
type Updater struct {
	Client  *omaha.Client
	Store   *Store
	Log     *slog.Logger
	Author  object.Signature // When is set per commit
	SignKey *pgp.Entity      // signs commits when set
	Push    bool
	// AllowRef lets the branch template name the served ref itself.
	AllowRef bool
	Metrics  *Metrics
	// Hosts, inside serve, reads the Omaha census: how many hosts of an
	// arch report a version, and since when without a pause. With it and
	// omaha.rollout.soak, rollouts move to their next stage by themselves.
	Hosts func(arch, version string) (int, time.Time)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Keyrings gives the keys releases are verified with; nil: one
	// keeping fetched vendor keys in Store's directory, through Store.HTTP.
	Keyrings *Keyrings

	pass    sync.Mutex // one pass at a time
	mu      sync.Mutex
	status  map[string]ImageStatus
	lastErr string // of the last pass as a whole: repository, tree
	trigger chan struct{}
	stages  map[string]stageSeen // by image: the rollout stage in the base tree, since when
	keys    *Keyrings            // when Keyrings is nil
}

// Image states, as /status shows them.
const (
	StateUpToDate     = "up-to-date"
	StateNotPublished = "not-published" // announced, not on the mirror yet: retried next pass
	StateProposed     = "proposed"      // committed (and pushed with --push) on its branch
	StateUnchanged    = "unchanged"     // the branch already holds this update
	StateFailed       = "failed"
)

// ImageStatus is one image's updater state.
type ImageStatus struct {
	Current   string    `json:"current"`
	Latest    string    `json:"latest,omitempty"`
	LastCheck time.Time `json:"last_check"`
	State     string    `json:"state"`
	// Stage is where a failure happened: check, download, verify, edit,
	// commit or push.
	Stage string `json:"stage,omitempty"`
	Error string `json:"error,omitempty"`
	// Retry is true when the error may pass by itself (network, server,
	// not published); false when a person must act (signature, tree).
	Retry  bool   `json:"retry,omitempty"`
	Branch string `json:"branch,omitempty"`
	Commit string `json:"commit,omitempty"`
	Pushed bool   `json:"pushed,omitempty"`
	Signer string `json:"signer,omitempty"`
	// Action is what was proposed: update, channel-switch, rollout-open,
	// rollout-replace, rollout-stage or rollout-finish.
	Action string `json:"action,omitempty"`
}

// Status returns a copy of every image's state.
func (u *Updater) Status() map[string]ImageStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]ImageStatus, len(u.status))
	for k, v := range u.status {
		out[k] = v
	}
	return out
}

// LastError is why the last pass could not look at any image (the
// repository could not be opened, the tree is invalid); empty when it ran.
func (u *Updater) LastError() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastErr
}

func (u *Updater) setLastError(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lastErr = ""
	if err != nil {
		u.lastErr = err.Error()
	}
}

func (u *Updater) setStatus(id string, st ImageStatus) {
	u.mu.Lock()
	if u.status == nil {
		u.status = map[string]ImageStatus{}
	}
	u.status[id] = st
	u.mu.Unlock()
	u.Metrics.observe(id, st)
}

// Sync runs one pass over the repository's base commit. It fails only
// when the tree cannot be read or is invalid; per-image outcomes are in
// the returned map (and Status).
func (u *Updater) Sync(ctx context.Context, repo *propose.Repo) (map[string]ImageStatus, error) {
	u.pass.Lock()
	defer u.pass.Unlock()
	fsys, err := repo.Tree()
	if err != nil {
		u.setLastError(err)
		return nil, err
	}
	// Validity is schema's to say; secrets are the server's business, not
	// the updater's, so any secret a config reads counts as present.
	tree, diags := schema.LoadWith(ctx, fsys, nil, schema.AnySecrets())
	if diags.Errors() > 0 {
		err := fmt.Errorf("the tree at %.12s is invalid; fix it first (pxeops check): %s", repo.Base(), diags.FirstError())
		u.setLastError(err)
		return nil, err
	}
	u.setLastError(nil)
	out := map[string]ImageStatus{}
	for _, id := range tree.ImageIDs() {
		img := tree.Images[id]
		if img.Update != "omaha" {
			continue
		}
		st := u.syncImage(ctx, repo, fsys, tree, img)
		if st.Error != "" {
			u.log().Warn("image update failed", "image", id, "stage", st.Stage, "retry", st.Retry, "err", st.Error)
		} else {
			u.log().Info("image checked", "image", id, "current", st.Current, "latest", st.Latest, "state", st.State, "branch", st.Branch, "commit", st.Commit)
		}
		u.setStatus(id, st)
		out[id] = st
	}
	return out, nil
}

func (u *Updater) syncImage(ctx context.Context, repo *propose.Repo, fsys fs.FS, tree *schema.Tree, img *schema.Image) ImageStatus {
	st := ImageStatus{Current: img.Version, LastCheck: u.now().UTC()}
	fail := func(stage string, retry bool, err error) ImageStatus {
		st.State, st.Stage, st.Retry, st.Error = StateFailed, stage, retry, err.Error()
		if retry && errors.Is(err, ErrNotPublished) {
			st.State = StateNotPublished
		}
		return st
	}
	o := tree.Settings.OmahaFor(img.OS)
	keys, err := u.keyrings().For(ctx, fsys, o, img.OS)
	if err != nil {
		var ke *KeyringError
		return fail("verify", errors.As(err, &ke) && ke.Retry, err)
	}
	latest, err := u.latest(ctx, o, img, img.Version)
	if err != nil {
		return fail("check", true, err)
	}
	st.Latest = latest
	t, err := u.target(ctx, o, img, latest)
	if err != nil {
		return fail("check", true, err)
	}
	if t.Switch {
		st.Latest = t.Version
	}
	ch := plan(img, o.Rollout, t)
	if ch == nil {
		ch = u.soaked(img, o.Rollout)
	}
	if ch == nil {
		st.State = StateUpToDate
		return st
	}
	st.Action = ch.Action
	data := img.MirrorData(ch.Version)
	dir, err := data.Expand("omaha.mirror", o.Mirror)
	if err != nil {
		return fail("download", false, err)
	}
	dir = strings.TrimSuffix(dir, "/") + "/"
	var files [2]Asset
	for i, name := range []string{o.Files.Kernel, o.Files.Initrd} {
		if !ch.mirrors() {
			break // the rollout's files are in the tree already
		}
		if files[i], err = u.Store.Mirror(ctx, dir+name, name, keys); err != nil {
			var p permanent
			var v *VerifyError
			if errors.As(err, &v) {
				return fail("verify", false, err)
			}
			return fail("download", errors.Is(err, ErrNotPublished) || !errors.As(err, &p), err)
		}
	}
	st.Signer = files[0].Signer.Primary
	ref := func(a Asset) FileRef {
		if o.URLs == "upstream" {
			return FileRef{URL: dir + a.Name, SHA256: a.SHA256}
		}
		return FileRef{URL: "/assets/" + a.Path(), SHA256: a.SHA256}
	}
	// Moving the pin past an open rollout (no stages, or the rollout's
	// finish) ends it; a newer rollout stays.
	e := ImageEdit{Version: ch.Version, Kernel: ref(files[0]), Initrd: ref(files[1]),
		RemoveRollout: img.Rollout != nil && omaha.CompareVersions(img.Rollout.Version, ch.Version) <= 0}
	if r := img.Rollout; !ch.mirrors() {
		e.Kernel, e.Initrd = FileRef(r.Kernel), FileRef(r.Initrd[0])
	}
	if ch.Action == ActionRolloutOpen || ch.Action == ActionRolloutReplace || ch.Action == ActionRolloutStage {
		e = ImageEdit{Rollout: &RolloutEdit{Version: ch.Version, Share: ch.Share, Kernel: e.Kernel, Initrd: e.Initrd}}
	}
	src, err := fs.ReadFile(fsys, img.File())
	if err != nil {
		return fail("edit", true, err)
	}
	edited, err := EditImage(src, e)
	if err != nil {
		return fail("edit", false, fmt.Errorf("%s:%w", img.File(), err))
	}
	if _, diags := schema.LoadWith(ctx, source.WithFile(fsys, img.File(), edited), nil, schema.AnySecrets()); diags.Errors() > 0 {
		return fail("edit", false, fmt.Errorf("the edited tree does not pass pxeops check: %s", diags.FirstError()))
	}
	if st.Branch, err = data.Expand("omaha.branch", o.Branch); err != nil {
		return fail("commit", false, err)
	}
	author := u.Author
	author.When = u.now()
	out, err := repo.Propose(ctx, propose.Proposal{
		Branch: st.Branch, Files: []propose.File{{Path: img.File(), Content: edited}},
		Message: commitMessage(img, ch, dir, files), Author: author,
		SignKey: u.SignKey, Push: u.Push, AllowRef: u.AllowRef,
	})
	st.Commit, st.Pushed = out.Commit, out.Pushed
	if err != nil {
		stage := "commit"
		if out.Commit != "" {
			stage = "push"
		}
		return fail(stage, stage == "push", err)
	}
	st.State = StateProposed
	if !out.Changed {
		st.State = StateUnchanged
	}
	return st
}

// latest asks the update service which version a machine of img's
// channel running version would move to ("" for none), falling back to
// version.txt (the channel's current release) when enabled.
func (u *Updater) latest(ctx context.Context, o schema.OmahaSettings, img *schema.Image, version string) (string, error) {
	offer, err := u.Client.Check(ctx, omaha.Query{Server: o.Server, Channel: img.Channel, Arch: img.Arch, Board: schema.Board(img.Arch), Version: version, MachineID: "pxeops-" + img.ID()})
	if err == nil || !o.Fallback {
		return offer.Version, err
	}
	dir, terr := img.MirrorData("current").Expand("omaha.mirror", o.Mirror)
	if terr != nil {
		return "", err
	}
	v, ferr := u.Client.VersionTxt(ctx, strings.TrimSuffix(dir, "/")+"/version.txt")
	if ferr != nil {
		return "", fmt.Errorf("%w; version.txt fallback: %v", err, ferr)
	}
	u.log().Warn("omaha server failed; using version.txt", "image", img.ID(), "err", err, "version", v)
	return v, nil
}

func commitMessage(img *schema.Image, ch *change, dir string, files [2]Asset) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n\n", img.File(), ch.headline(img))
	if ch.Switch {
		fmt.Fprintf(&b, "The image's channel is %s, which does not have %s: a PXE image is stateless, so it moves to %s's release.\n\n", img.Channel, img.Version, img.Channel)
	}
	if !ch.mirrors() {
		fmt.Fprintf(&b, "%s\n\n", ch.Soaked)
		r := img.Rollout
		for _, f := range []struct {
			role string
			file schema.File
		}{{"kernel", r.Kernel}, {"initrd", r.Initrd[0]}} {
			fmt.Fprintf(&b, "%s: %s\n  sha256 %s\n", f.role, f.file.URL, f.file.SHA256)
		}
	} else {
		fmt.Fprintf(&b, "Mirrored by pxeops omaha sync; both files verified before they were kept.\n\n")
		for i, role := range []string{"kernel", "initrd"} {
			fmt.Fprintf(&b, "%s: %s (%d bytes)\n  sha256 %s\n", role, files[i].Name, files[i].Size, files[i].SHA256)
		}
		fmt.Fprintf(&b, "signed by: %s (subkey %s)\n", files[0].Signer.Primary, files[0].Signer.KeyID)
	}
	fmt.Fprintf(&b, "release: %s\n", releaseLink(img.OS, ch.Version, dir))
	return b.String()
}

func releaseLink(osName, version, dir string) string {
	if osName == "flatcar" {
		return "https://www.flatcar.org/releases#release-" + version
	}
	return dir
}

func (u *Updater) log() *slog.Logger { return cmp.Or(u.Log, discard) }

// discard is what a nil Log means: no logging (a nil HTTP is net/http's
// default client).
var discard = slog.New(slog.DiscardHandler)
