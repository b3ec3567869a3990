package updater

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/schema"
)

// Actions, as ImageStatus.Action and the commit message name them.
const (
	ActionUpdate         = "update"          // version moved up, every machine at once
	ActionChannelSwitch  = "channel-switch"  // version set to the new channel's release, lower or not
	ActionRolloutOpen    = "rollout-open"    // a rollout at the first stage beside the pinned version
	ActionRolloutReplace = "rollout-replace" // a newer release replaces the open rollout's
	ActionRolloutStage   = "rollout-stage"   // the rollout's share moved to the next stage
	ActionRolloutFinish  = "rollout-finish"  // version := the rollout's, rollout removed
)

// change is what one pass proposes for an image.
type change struct {
	Action string
	// Version is the release the change brings in (the rollout's for the
	// stage and finish actions).
	Version string
	// Switch is set when the image's channel no longer has its pinned
	// version: From names the channel that does ("" when none of the
	// known ones does).
	Switch bool
	From   string
	Share  schema.Share // the rollout's share after the change
	// Soaked says why a stage moves: the hosts on the rollout and since
	// when they have reported it.
	Soaked string
}

// mirrors reports whether the change brings in files to download.
func (c *change) mirrors() bool {
	return c.Action != ActionRolloutStage && c.Action != ActionRolloutFinish
}

// target decides which release the image should move to, given what the
// service offers a machine on the pinned version (offer, "" for
// noupdate). Versions only move forward, except on a channel switch: the
// image's channel does not have its pinned version, so the operator
// changed channel: then the channel's current release is proposed,
// lower or not (a PXE image is stateless). Whether the channel has the
// pinned version is asked of the mirror, whose directories are per
// channel (the pinned release's signature is there or not); a mirror
// template without .Channel cannot tell, and then versions only move
// forward. The service is asked for the channel's current release from
// 0.0.0, which every Omaha service (Nebraska, the public ones) answers.
// "" is nothing to move to.
func (u *Updater) target(ctx context.Context, o schema.OmahaSettings, img *schema.Image, offer string) (change, error) {
	c := change{Action: ActionUpdate, Version: offer}
	onChannel, err := u.hasRelease(ctx, o, img, img.Channel)
	if err != nil {
		return change{}, err
	}
	if !onChannel {
		c.Action, c.Switch = ActionChannelSwitch, true
		if c.From, err = u.channelOf(ctx, o, img); err != nil {
			return change{}, err
		}
	}
	if offer != "" && omaha.CompareVersions(offer, img.Version) > 0 {
		return c, nil
	}
	if onChannel {
		return change{}, nil
	}
	current, err := u.latest(ctx, o, img, "0.0.0")
	if err != nil || current == "" || current == img.Version {
		return change{}, err
	}
	c.Version = current
	return c, nil
}

// knownChannels are where channelOf looks for the pinned release.
var knownChannels = map[string][]string{"flatcar": {"alpha", "beta", "stable", "lts"}, "coreos": {"alpha", "beta", "stable"}}

// channelOf names the known channel whose mirror has the pinned
// version, for the commit message; "" when none has it.
func (u *Updater) channelOf(ctx context.Context, o schema.OmahaSettings, img *schema.Image) (string, error) {
	for _, ch := range knownChannels[img.OS] {
		if ch == img.Channel {
			continue
		}
		ok, err := u.hasRelease(ctx, o, img, ch)
		if err != nil || ok {
			return ch, err
		}
	}
	return "", nil
}

// hasRelease reports whether channel's mirror directory of the pinned
// version holds the initrd's signature. A mirror template that does not
// depend on the channel has every version everywhere.
func (u *Updater) hasRelease(ctx context.Context, o schema.OmahaSettings, img *schema.Image, channel string) (bool, error) {
	data := img.MirrorData(img.Version)
	data.Channel = channel
	dir, err := data.Expand("omaha.mirror", o.Mirror)
	if err != nil {
		return false, err
	}
	data.Channel += "-other"
	if other, err := data.Expand("omaha.mirror", o.Mirror); err != nil || other == dir {
		return true, err
	}
	return u.Store.Published(ctx, strings.TrimSuffix(dir, "/")+"/"+o.Files.Initrd+".sig")
}

// plan turns the target into the change to propose under the rollout
// settings; nil when the image is where it should be.
func plan(img *schema.Image, r schema.RolloutSettings, t change) *change {
	if t.Version == "" {
		return nil
	}
	open := img.Rollout
	if len(r.Stages) == 0 {
		return &t // as before rollouts: version moves, every machine at once
	}
	switch {
	case open == nil:
		t.Action, t.Share = ActionRolloutOpen, r.Stages[0]
	case open.Version == t.Version:
		return nil
	case t.Switch || omaha.CompareVersions(t.Version, open.Version) > 0:
		// A newer release starts over at the first stage: the machines on
		// the rollout have not run it yet.
		t.Action, t.Share = ActionRolloutReplace, r.Stages[0]
	default:
		return nil
	}
	return &t
}

// stageSeen is a rollout stage an earlier pass found in the base tree.
type stageSeen struct {
	version string
	share   schema.Share
	at      time.Time
}

// soaked moves an open rollout on once it has soaked: with
// omaha.rollout.soak and the census (Hosts, inside serve), when at least
// one host reports the rollout's version and hosts have done so without
// a pause for the soak time, counted from no earlier than the first pass
// that saw this stage in the base tree (so each stage soaks in full after
// its merge; a restart of serve starts the soak over), the next stage is
// proposed, and after the last one the finished rollout. nil: nothing to
// move yet.
func (u *Updater) soaked(img *schema.Image, rs schema.RolloutSettings) *change {
	r := img.Rollout
	soak := time.Duration(rs.Soak)
	if r == nil || soak <= 0 || len(rs.Stages) == 0 || u.Hosts == nil {
		return nil
	}
	now := u.now()
	seen := u.stageSince(img.ID(), r.Version, r.Share, now)
	hosts, since := u.Hosts(img.Arch, r.Version)
	if hosts == 0 {
		return nil
	}
	from := since
	if seen.After(from) {
		from = seen
	}
	if now.Sub(from) < soak {
		return nil
	}
	c := &change{Action: ActionRolloutFinish, Version: r.Version, Share: schema.FullShare,
		Soaked: fmt.Sprintf("%d hosts report %s, reported without a pause since %s; this stage soaked for %s (omaha.rollout.soak %s).",
			hosts, r.Version, since.UTC().Format(time.RFC3339), now.Sub(from).Round(time.Second), soak)}
	if next, ok := nextStage(rs.Stages, r.Share); ok {
		c.Action, c.Share = ActionRolloutStage, next
	}
	return c
}

// stageSince records the first pass that saw image's rollout at this
// version and share, and returns when that was.
func (u *Updater) stageSince(image, version string, share schema.Share, now time.Time) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stages == nil {
		u.stages = map[string]stageSeen{}
	}
	if s, ok := u.stages[image]; ok && s.version == version && s.share == share {
		return s.at
	}
	u.stages[image] = stageSeen{version: version, share: share, at: now}
	return now
}

func (u *Updater) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

// nextStage is the stage after share, and whether there is one; past the
// last stage the rollout finishes.
func nextStage(stages []schema.Share, share schema.Share) (schema.Share, bool) {
	i := slices.IndexFunc(stages, func(s schema.Share) bool { return s > share })
	if i < 0 {
		return 0, false
	}
	return stages[i], true
}

// headline is the commit message's first line after the file name.
func (c *change) headline(img *schema.Image) string {
	prefix := img.OS + " " + img.Channel + " "
	if c.Switch {
		from := c.From
		if from == "" {
			from = "(" + img.Version + " is not a " + img.Channel + " release)"
		}
		prefix = img.OS + " channel switch " + from + " → " + img.Channel + ": "
	}
	switch c.Action {
	case ActionRolloutOpen:
		return fmt.Sprintf("%srollout of %s opened at %s (pinned %s)", prefix, c.Version, c.Share, img.Version)
	case ActionRolloutReplace:
		return fmt.Sprintf("%srollout %s → %s, a newer release, back to %s (pinned %s)", prefix, img.Rollout.Version, c.Version, c.Share, img.Version)
	case ActionRolloutStage:
		return fmt.Sprintf("%srollout of %s: %s → %s (pinned %s)", prefix, c.Version, img.Rollout.Share, c.Share, img.Version)
	case ActionRolloutFinish:
		return fmt.Sprintf("%srollout of %s finished: %s → %s", prefix, c.Version, img.Version, c.Version)
	}
	return fmt.Sprintf("%s%s → %s", prefix, img.Version, c.Version)
}

// Published reports whether url is on the server: false for 404 and 410,
// an error when the server cannot say.
func (s *Store) Published(ctx context.Context, url string) (bool, error) {
	resp, err := s.get(ctx, url)
	if errors.Is(err, ErrNotPublished) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", url, err)
	}
	resp.Body.Close()
	return true, nil
}
