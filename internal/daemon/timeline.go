package daemon

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pxeops/pxeops/omaha"
	"github.com/pxeops/pxeops/serve/timeline"
)

// timeline is the boot timeline every server tells: Config.Timeline or
// one with the defaults. Omaha check-ins reach it by the host's address.
func (c *Config) timeline(reg prometheus.Registerer, responder *omaha.Responder) *timeline.Recorder {
	boots := c.Timeline
	if boots == nil {
		boots = timeline.New(timeline.Options{Registerer: reg})
	}
	responder.CheckIn = func(remoteAddr, version string) {
		if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
			boots.Omaha(ap.Addr().Unmap(), version)
		}
	}
	return boots
}
