package daemon

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pxeops/pxeops/reconcile"
	"github.com/pxeops/pxeops/serve/httpserver"
	"github.com/pxeops/pxeops/serve/statuspage"
	"github.com/pxeops/pxeops/serve/timeline"
)

// statusPage is the handler of GET /: the page of the /status document,
// the boot timeline's machines (with their installed state) and the PXE
// clients no group matched, built at each request. boots nil shows none.
func statusPage(status func() Status, boots *timeline.Recorder, states httpserver.MachineStates) http.Handler {
	return statuspage.Handler(func(*http.Request) statuspage.Data {
		d := pageData(status(), time.Now())
		if boots != nil {
			d.Machines, d.Unmatched = pageMachines(boots.Machines(), states), boots.Discovered()
		}
		return d
	})
}

func pageMachines(ms []timeline.Machine, states httpserver.MachineStates) []statuspage.Machine {
	out := make([]statuspage.Machine, 0, len(ms))
	for _, m := range ms {
		pm := statuspage.Machine{MAC: m.MAC, Group: m.Group, Profile: m.Profile, Revision: m.Revision, Stage: m.Stage.String(), LastSeen: m.LastSeen}
		if states != nil {
			if st, ok := states.Get(m.MAC); ok && st.Installed {
				pm.State = "installed"
			}
		}
		out = append(out, pm)
	}
	return out
}

// pageData is what the page shows of the /status document.
func pageData(st Status, now time.Time) statuspage.Data {
	d := statuspage.Data{Now: now, Version: st.Version, ServerURL: st.ServerURL, Access: st.Access, Down: st.Down,
		Source: statuspage.Source{Kind: st.Source.Kind, Location: st.Source.Location, LastScan: st.Source.LastScan, LastError: st.Source.LastError}}
	if s := st.Source.Secrets; s != nil && s.LastError != "" && d.Source.LastError == "" {
		d.Source.LastError = "secrets: " + s.LastError
	}
	if s := st.Served; s != nil {
		d.Served = &statuspage.Served{Revision: s.Revision, Digest: s.Digest, Since: s.Since,
			Profiles: s.Profiles, Groups: s.Groups, Images: s.Images, Warnings: s.Warnings}
	}
	if p := st.InProgress; p != nil {
		d.Loading = &statuspage.Loading{Revision: p.Revision, Since: p.Since}
	}
	if a := st.LastAttempt; a != nil {
		r := &statuspage.Reload{Revision: a.Revision, At: a.At, OK: a.Result == reconcile.ResultServed, Result: a.Result,
			Action: a.Action, Errors: a.Errors, Warnings: a.Warnings, Truncated: a.Truncated}
		if a.NextRetry != nil {
			r.NextRetry = *a.NextRetry
		}
		for _, f := range a.Findings {
			r.Diagnostics = append(r.Diagnostics, statuspage.Diagnostic{File: f.File, Line: f.Line, Col: f.Col, Severity: string(f.Severity), Message: f.Message})
		}
		d.LastReload = r
	}
	o := st.Omaha
	d.Omaha = statuspage.Omaha{Updater: o.Updater, Error: o.Error, Census: statuspage.Census{Hosts: o.Census.Hosts}}
	for id, img := range o.Images {
		d.Omaha.Images = append(d.Omaha.Images, statuspage.Image{ID: id, Current: img.Current, Latest: img.Latest, State: img.State,
			Stage: img.Stage, Error: img.Error, LastCheck: img.LastCheck, Branch: img.Branch})
	}
	for key, n := range o.Census.Versions { // "<channel> <version>"
		channel, version, _ := strings.Cut(key, " ")
		d.Omaha.Census.Versions = append(d.Omaha.Census.Versions, statuspage.Version{Channel: channel, Version: version, Hosts: n})
	}
	for _, h := range o.Census.Recent {
		d.Omaha.Census.Recent = append(d.Omaha.Census.Recent, statuspage.Host{MachineID: h.MachineID, Version: h.Version, Channel: h.Channel,
			Board: h.Board, Addr: h.Addr, LastContact: h.LastContact, LastEvent: h.LastEvent})
	}
	// Map order is random; the page sorts too, this keeps Data stable.
	slices.SortFunc(d.Omaha.Images, func(a, b statuspage.Image) int { return strings.Compare(a.ID, b.ID) })
	return d
}
