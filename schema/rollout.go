package schema

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rollout is a newer release of an image served to a share of the
// machines that boot it; the others keep the image's version. Which side a
// machine is on is decided from its MAC (render), so it is the same after
// every reload and on every replica.
type Rollout struct {
	Version string `yaml:"version" json:"version" doc:"The release being rolled out; newer than the image's version in the usual case. Required."`
	Share   Share  `yaml:"share" json:"share" doc:"The share of machines on the rollout's version, from 0% to 100%, chosen by a hash of the MAC. Raising it keeps every machine already on the new version there. Required."`
	Kernel  File   `yaml:"kernel" json:"kernel" doc:"The rollout version's kernel. Required."`
	Initrd  []File `yaml:"initrd" json:"initrd" doc:"The rollout version's initrds, in load order. At least one."`
}

// RolloutSettings are how the updater opens and moves rollouts.
type RolloutSettings struct {
	Stages []Share `yaml:"stages" json:"stages,omitempty" doc:"The shares a new release moves through, e.g. [10%, 50%]: the updater proposes a rollout at the first one beside the pinned version. Absent: the updater moves version directly, every machine at once."`
	// Soak is the canaries' time to come back: without it, moving to the
	// next stage is an operator's commit.
	Soak Duration `yaml:"soak" json:"soak,omitempty" doc:"With stages: once the machines on the rollout have checked in with its version for this long, the updater proposes the next stage, and after the last one the finished rollout (version moved up, rollout removed). Absent: each next stage is a commit by hand."`
}

// Share is a percentage written as "10%" (or 10), kept in hundredths of a
// percent so "0.5%" is exact.
type Share uint16

// FullShare is 100%.
const FullShare Share = 10000

func (s *Share) decodeScalar(text string) error {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(text), "%"))
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f > 100 || f*100 != float64(int(f*100)) {
		return fmt.Errorf("invalid share %q: a percentage from 0%% to 100%%, at most two decimals, e.g. 10%%", text)
	}
	*s = Share(f * 100)
	return nil
}

// Percent is the share as a number from 0 to 100.
func (s Share) Percent() float64 { return float64(s) / 100 }

func (s Share) String() string {
	return strconv.FormatFloat(s.Percent(), 'f', -1, 64) + "%"
}

func (s Share) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (r *Rollout) check(v checker, m *meta) {
	if !m.has("rollout.version") {
		v.required(m, "rollout.version", "the release rolled out, e.g. version: 4116.0.0")
	} else if !versionPattern.MatchString(r.Version) {
		v.errorf(m, "rollout.version", "invalid version %q: use letters, digits, '.', '_', '+' and '-'", r.Version)
	}
	if !m.has("rollout.share") {
		v.required(m, "rollout.share", "the share of machines on the rollout's version, e.g. share: 10%")
	}
	if !m.has("rollout.kernel") || m.bad["rollout.kernel"] {
		v.required(m, "rollout.kernel", "kernel: {url: ..., sha256: ...}")
	} else {
		v.file(m, "rollout.kernel", &r.Kernel)
	}
	if len(r.Initrd) == 0 {
		v.required(m, "rollout.initrd", "a list of {url: ..., sha256: ...}")
	}
	for i := range r.Initrd {
		v.file(m, fmt.Sprintf("rollout.initrd[%d]", i), &r.Initrd[i])
	}
}

// rollout checks pxeops.yaml's omaha.rollout.
func (v *validator) rollout(s *Settings) {
	m, r := &s.meta, &s.Omaha.Rollout
	for i, st := range r.Stages {
		path := fmt.Sprintf("omaha.rollout.stages[%d]", i)
		switch {
		case st == 0 || st >= FullShare:
			v.errorf(m, path, "stage %s: a stage is a share between 0%% and 100%%, both excluded (100%% is the finished rollout)", st)
		case i > 0 && st <= r.Stages[i-1]:
			v.errorf(m, path, "stage %s is not above the one before it (%s): stages only grow", st, r.Stages[i-1])
		}
	}
	if r.Soak != 0 && len(r.Stages) == 0 {
		v.errorf(m, "omaha.rollout.soak", "omaha.rollout.soak needs omaha.rollout.stages: there is no next stage to move to")
	}
	if d := time.Duration(r.Soak); d < 0 || (d > 0 && d < time.Minute) {
		v.errorf(m, "omaha.rollout.soak", "omaha.rollout.soak %s is too short: at least 1m", d)
	}
}
