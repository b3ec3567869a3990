//go:build !linux

package neighbour

import "errors"

func dump() ([]byte, error) {
	return nil, errors.New("the neighbour table is read over netlink, on Linux only")
}
