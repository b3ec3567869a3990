package httpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/machinestate"
)

// MachineStates is the durable machine state the boot answers read and
// an installer's report writes (machinestate.Store).
type MachineStates interface {
	// Get must not lock or allocate: every boot request calls it.
	Get(mac string) (machinestate.State, bool)
	Set(mac string, st machinestate.State) error
	Reset(mac string) (bool, error)
}

// maxReportBody bounds the completion report's body, which is not read:
// busybox wget --post-data needs one, curl -X POST sends none.
const maxReportBody = 1 << 10

// withState gives m the state the store keeps for it, before the lookup,
// so groups selecting state: installed match on every boot endpoint.
func (s *server) withState(m *render.Machine) {
	if s.opts.Machines == nil || m.MAC == "" {
		return
	}
	if st, ok := s.opts.Machines.Get(m.MAC); ok && st.Installed {
		m.State = render.StateInstalled
	}
}

// registerMachineState adds the installer's report to the boot port
// (bootHandle) and the reset to the admin one. Without an admin port of
// its own, the reset is taken from loopback only: it makes the machine
// install again, over its disk, and the boot network is no place to
// decide that.
func (s *server) registerMachineState(bootHandle, adminHandle func(pattern, endpoint string, h http.HandlerFunc), split bool) {
	bootHandle("POST /v1/machines/{mac}/installed", "installed", s.withBody(maxReportBody, s.opts.BodyTimeout, s.handleInstalled))
	adminHandle("POST /v1/machines/{mac}/reset", "reset", s.withBody(maxReportBody, s.opts.BodyTimeout, func(w http.ResponseWriter, r *http.Request) {
		s.handleReset(w, r, !split)
	}))
}

// handleInstalled records that the machine's installer finished: POST
// /v1/machines/{mac}/installed ({{ .InstalledURL }}), its query the
// machine's other selector values and the access token, decided as the
// machine's config is. It answers 204, also when the machine was
// installed already (the record of the first report stays).
func (s *server) handleInstalled(w http.ResponseWriter, r *http.Request) {
	m, err := machineFromQuery(r)
	mac, macErr := render.ParseMAC(r.PathValue("mac"))
	switch {
	case macErr != nil:
		err = &httpError{http.StatusBadRequest, "bad MAC in path: " + macErr.Error()}
	case err == nil && m.MAC != "" && m.MAC != mac:
		err = &httpError{http.StatusBadRequest, "the query's mac is not the path's"}
	}
	m.MAC = mac
	s.boot(w, r, "installed", m, err, func(snap *render.Snapshot, g *render.Group, _ string) error {
		if s.opts.Machines == nil {
			return &httpError{http.StatusNotFound, "this server keeps no machine state"}
		}
		if s.opts.Timeline != nil {
			s.opts.Timeline.Installed(mac, remoteIP(r))
		}
		if st, ok := s.opts.Machines.Get(mac); ok && st.Installed {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		st := machinestate.State{Installed: true, At: time.Now().UTC(), Revision: snap.Revision, Group: g.ID, Profile: g.Profile.ID}
		if err := s.opts.Machines.Set(mac, st); err != nil {
			if errors.Is(err, machinestate.ErrFull) {
				return &httpError{http.StatusInsufficientStorage, err.Error()}
			}
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleReset forgets that a machine was installed: POST
// /v1/machines/{mac}/reset on the admin port; 200 with the state it had,
// 404 when it had none.
func (s *server) handleReset(w http.ResponseWriter, r *http.Request, loopbackOnly bool) {
	if loopbackOnly {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().IsLoopback() {
			http.Error(w, "reset is taken from loopback only when the admin endpoints share the boot port (serve --admin-addr)", http.StatusForbidden)
			return
		}
	}
	mac, err := render.ParseMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "bad MAC in path: "+err.Error(), http.StatusBadRequest)
		return
	}
	if s.opts.Machines == nil {
		http.Error(w, "this server keeps no machine state", http.StatusNotFound)
		return
	}
	old, _ := s.opts.Machines.Get(mac)
	ok, err := s.opts.Machines.Reset(mac)
	switch {
	case err != nil:
		s.log.Error("machine state: reset failed", "mac", mac, "err", err)
		http.Error(w, "reset failed: "+err.Error(), http.StatusInternalServerError)
		return
	case !ok:
		http.Error(w, fmt.Sprintf("machine %s is not installed", mac), http.StatusNotFound)
		return
	}
	s.log.Info("machine state: reset", "mac", mac, "remote", r.RemoteAddr, "was_group", old.Group, "was_profile", old.Profile)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		MAC   string             `json:"mac"`
		Reset bool               `json:"reset"`
		Was   machinestate.State `json:"was"`
	}{mac, true, old})
}
