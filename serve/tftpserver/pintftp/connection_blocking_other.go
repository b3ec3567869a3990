//go:build !linux

package tftp

// pxeops patch: blocking reads are implemented for Linux only.

import (
	"errors"
	"net"
)

func newBlockingConn(*net.UDPConn, func()) (connection, error) {
	return nil, errors.New("blocking reads are implemented for Linux only")
}
