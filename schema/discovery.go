package schema

import (
	"strings"
	"time"
)

// DiscoverySettings configure discovery: PXE clients that no group
// matches, proposed as one group file each on a branch of their own.
type DiscoverySettings struct {
	Profile  string   `yaml:"profile" json:"profile,omitempty" doc:"Id of profiles/<id>.yaml that proposed groups boot; they are written to groups/. Absent: they are written as groups/discovered-<mac>.yaml.disabled, which pxeops does not load: name a profile in the file and drop the suffix to boot the machine."`
	Branch   string   `yaml:"branch" json:"branch" doc:"Branch proposals are committed to (replacing what it held); never the served one." default:"pxeops/discovered"`
	Serve    bool     `yaml:"serve" json:"serve" doc:"Run the discovery pass inside pxeops serve every interval, pushing to the branch; only when the source is a git URL (with a directory source /status says why it does not run: use pxeops discover)." default:"false"`
	Interval Duration `yaml:"interval" json:"interval" doc:"Time between passes inside serve, jittered; at least 10s. A pass commits only when the unmatched machines or the served revision changed." default:"1m"`
}

// discovery checks pxeops.yaml's discovery settings.
func (v *validator) discovery(s *Settings) {
	m, d := &s.meta, &s.Discovery
	if d.Profile != "" && v.t.Profiles[d.Profile] == nil {
		v.errorf(m, "discovery.profile", "profile %q does not exist: no profiles/%s.yaml%s", d.Profile, d.Profile, didYouMean(d.Profile, v.t.Profiles))
	}
	if !validBranch(d.Branch) {
		v.errorf(m, "discovery.branch", "invalid discovery.branch %q: a git branch name such as pxeops/discovered", d.Branch)
	}
	if time.Duration(d.Interval) < 10*time.Second {
		v.errorf(m, "discovery.interval", "discovery.interval %s is too short: at least 10s", time.Duration(d.Interval))
	}
}

// validBranch follows git check-ref-format for a branch's short name, so
// the error is check's, at pxeops.yaml's line, not the first pass's.
func validBranch(b string) bool {
	if b == "" || len(b) > 200 || strings.HasPrefix(b, "-") || b == "@" {
		return false
	}
	if strings.ContainsAny(b, " ~^:?*[\\") || strings.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r == 0x7f }) ||
		strings.Contains(b, "..") || strings.Contains(b, "@{") || strings.Contains(b, "//") ||
		strings.HasSuffix(b, ".") || strings.HasSuffix(b, "/") || strings.HasPrefix(b, "/") {
		return false
	}
	for part := range strings.SplitSeq(b, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}
