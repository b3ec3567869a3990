package tftpserver

import (
	"errors"
	"net/netip"
	"strings"

	tftp "github.com/pxeops/pxeops/serve/tftpserver/pintftp"

	"github.com/pxeops/pxeops/serve/timeline"
)

// Timeline records the end of each transfer (timeline.Recorder): the
// file asked for, the bytes sent, and its outcome (timeline's
// OutcomeComplete, OutcomeAborted, or "error: …").
type Timeline interface {
	TFTP(remote netip.Addr, file string, bytes int64, outcome string)
}

// maxOutcome bounds an error kept in the timeline.
const maxOutcome = 80

// note tells the timeline how a transfer ended. A size probe (UEFI's
// tsize request, aborted with error 8 once answered) and a name firmware
// asks for in case it exists are not steps of the machine's boot.
func (s *Server) note(ot tftp.OutgoingTransfer, file string, n int64, err error) {
	if s.Timeline == nil || ot == nil {
		return
	}
	outcome := timeline.OutcomeComplete
	if err != nil {
		var a interface{ Absent() bool }
		if errors.As(err, &a) && a.Absent() || strings.Contains(err.Error(), "code=8") {
			return
		}
		outcome = timeline.OutcomeAborted
		if n == 0 {
			outcome = "error: " + err.Error()
			if len(outcome) > maxOutcome {
				outcome = outcome[:maxOutcome]
			}
		}
	}
	remote, _ := netip.AddrFromSlice(ot.RemoteAddr().IP)
	s.Timeline.TFTP(remote.Unmap(), file, n, outcome)
}
