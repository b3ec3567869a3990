package neighbour

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds on one dump: the kernel answers in microseconds and a few KiB,
// so these only stop a stalled or flooded netlink socket from holding
// every request that waits for the read.
const (
	maxDumpBytes = 8 << 20
	dumpTimeout  = time.Second
)

// dump asks the kernel for every neighbour entry, IPv4 and IPv6
// (RTM_GETNEIGH with NLM_F_DUMP), and returns the messages up to
// NLMSG_DONE (or NLMSG_ERROR, which Parse reports). syscall.NetlinkRIB
// does the same without a bound on time or size.
func dump() ([]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(dumpTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// nlmsghdr and an rtgenmsg naming no family: every family's entries.
	req := make([]byte, nlmsgHdrLen+4)
	binary.NativeEndian.PutUint32(req[0:4], nlmsgHdrLen+1)
	binary.NativeEndian.PutUint16(req[4:6], unix.RTM_GETNEIGH)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], 1)
	req[nlmsgHdrLen] = unix.AF_UNSPEC
	if err := unix.Sendto(fd, req, 0, kernel); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	deadline := time.Now().Add(dumpTimeout)
	buf := make([]byte, 64<<10)
	var out []byte
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK):
			return nil, fmt.Errorf("netlink: no end of the neighbour dump within %s", dumpTimeout)
		case err != nil:
			return nil, fmt.Errorf("netlink receive: %w", err)
		case len(out)+n > maxDumpBytes:
			return nil, fmt.Errorf("netlink: neighbour dump over %d bytes", maxDumpBytes)
		}
		out = append(out, buf[:n]...)
		if ends(buf[:n]) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("netlink: no end of the neighbour dump within %s", dumpTimeout)
		}
	}
}

// ends reports whether a datagram holds the dump's last message.
func ends(b []byte) bool {
	for len(b) >= nlmsgHdrLen {
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if typ := binary.NativeEndian.Uint16(b[4:6]); typ == nlmsgDone || typ == nlmsgError {
			return true
		}
		if n < nlmsgHdrLen || n > len(b) {
			return true // malformed: let Parse say what is wrong
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return false
}
