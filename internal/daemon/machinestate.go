package daemon

import (
	"log/slog"
	"path/filepath"

	"github.com/pxeops/pxeops/serve/httpserver"
	"github.com/pxeops/pxeops/serve/machinestate"
)

// MachineStateFile is the machine state's file under StateDir.
const MachineStateFile = "machines.db"

// openMachines opens the machine state under StateDir; without StateDir
// none is kept (nil, and the installers' reports are answered 404).
// It returns the interface the HTTP server takes, never a nil *Store in
// it, which would not be nil.
func (c *Config) openMachines(log *slog.Logger) (httpserver.MachineStates, func(), error) {
	if c.StateDir == "" {
		return nil, func() {}, nil
	}
	st, err := machinestate.Open(filepath.Join(c.StateDir, MachineStateFile))
	if err != nil {
		return nil, nil, err
	}
	log.Info("machine state opened", "file", st.Path(), "machines", len(st.All()))
	return st, func() {
		if err := st.Close(); err != nil {
			log.Warn("machine state: close", "file", st.Path(), "err", err)
		}
	}, nil
}
