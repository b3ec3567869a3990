package omaha

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Side is one version the served tree gives the machines of an image:
// its pinned version, or its rollout's. The daemon hands the responder
// the sides (in Policy), so the census can say how many hosts run each.
type Side struct {
	Image string
	Name  string // SidePinned or SideRollout
	// Version and Arch are what a host on this side reports: its version,
	// and its board's arch.
	Version, Arch string
	Share         string // the rollout's share, e.g. "10%"; "" for the pinned side
}

// Side names.
const (
	SidePinned  = "pinned"
	SideRollout = "rollout"
)

// SideHosts is how many hosts report a side's version, and since when
// some host has (the last time the count rose from none).
type SideHosts struct {
	Version string    `json:"version"`
	Share   string    `json:"share,omitempty"`
	Hosts   int       `json:"hosts"`
	Since   time.Time `json:"since,omitzero"`
}

// ImageCensus is the census of one image: hosts on its pinned version and
// on its rollout's, when one is open.
type ImageCensus struct {
	Pinned  SideHosts  `json:"pinned"`
	Rollout *SideHosts `json:"rollout,omitempty"`
}

// versionCount is the hosts of one arch and version.
type versionCount struct {
	hosts int
	since time.Time
}

func versionKey(arch, version string) string { return arch + " " + version }

// countVersion moves the count of a version key; rs.mu held.
func (rs *Responder) countVersion(key string, delta int, now time.Time) {
	if key == "" {
		return
	}
	if rs.versions == nil {
		rs.versions = map[string]*versionCount{}
	}
	c := rs.versions[key]
	if c == nil {
		c = &versionCount{since: now}
		rs.versions[key] = c
	}
	if c.hosts += delta; c.hosts <= 0 {
		delete(rs.versions, key)
	}
}

// VersionHosts is how many hosts of arch (amd64, arm64) report version,
// and since when some host has without a pause.
func (rs *Responder) VersionHosts(arch, version string) (int, time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if c := rs.versions[versionKey(arch, version)]; c != nil {
		return c.hosts, c.since
	}
	return 0, time.Time{}
}

// ImageCensus maps the census onto the policy's sides, by the version and
// arch hosts report.
func (rs *Responder) ImageCensus() map[string]ImageCensus {
	var sides []Side
	if rs.Policy != nil {
		sides = rs.Policy().Sides
	}
	out := map[string]ImageCensus{}
	for _, s := range sides {
		n, since := rs.VersionHosts(s.Arch, s.Version)
		h := SideHosts{Version: s.Version, Share: s.Share, Hosts: n, Since: since}
		ic := out[s.Image]
		if s.Name == SideRollout {
			ic.Rollout = &h
		} else {
			ic.Pinned = h
		}
		out[s.Image] = ic
	}
	return out
}

// ImageHosts is the pxeops_omaha_image_hosts{image,side} gauge, read from
// the census at each scrape: images are the served tree's (not the
// network's), two sides each, so its labels are bounded by the tree.
func (rs *Responder) ImageHosts() prometheus.Collector { return imageHosts{rs} }

var imageHostsDesc = prometheus.NewDesc("pxeops_omaha_image_hosts",
	"Hosts that report an image's pinned version (side pinned) or its rollout's (side rollout).", []string{"image", "side"}, nil)

type imageHosts struct{ rs *Responder }

func (c imageHosts) Describe(ch chan<- *prometheus.Desc) { ch <- imageHostsDesc }

func (c imageHosts) Collect(ch chan<- prometheus.Metric) {
	census := c.rs.ImageCensus()
	for _, id := range slices.Sorted(maps.Keys(census)) {
		ic := census[id]
		ch <- prometheus.MustNewConstMetric(imageHostsDesc, prometheus.GaugeValue, float64(ic.Pinned.Hosts), id, SidePinned)
		if ic.Rollout != nil {
			ch <- prometheus.MustNewConstMetric(imageHostsDesc, prometheus.GaugeValue, float64(ic.Rollout.Hosts), id, SideRollout)
		}
	}
}
