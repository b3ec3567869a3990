package tftp

// pxeops patch: blocking reads for transfer sockets (see PATCHES.md).

import (
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockingConn waits for a transfer's ACKs in recvfrom(2) on a blocking
// socket, as tftpd-hpa does, instead of parking on Go's netpoller. In
// lock-step TFTP every block waits for one ACK, and the park and wake
// through epoll cost about as much as the round trip itself on loopback.
// The socket is a duplicate of the one net.ListenUDP made, which is then
// closed: a descriptor still registered with the netpoller would wake it
// for every ACK as well. It holds an OS thread while it waits, hence the
// server's limit.
type blockingConn struct {
	fd      int
	inet6   bool // an AF_INET6 socket: IPv4 peers go as mapped addresses
	local   net.Addr
	release func()

	// The raw addresses live here so the per-block system calls do not
	// allocate: dst is the last peer sent to (dstAddr) in the socket's
	// family, from the last source, lastFrom its *net.UDPAddr.
	dstAddr  *net.UDPAddr
	dst      unix.RawSockaddrAny
	dstLen   uint32
	from     unix.RawSockaddrAny
	lastFrom *net.UDPAddr

	deadline time.Time     // of the current setDeadline
	rcvtimeo time.Duration // what SO_RCVTIMEO holds now
	fresh    bool          // no read since setDeadline: rcvtimeo is the full wait
}

// newBlockingConn takes over conn's socket and closes conn; on an error
// conn is left as it was, for the caller to use.
func newBlockingConn(conn *net.UDPConn, release func()) (connection, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var serr error
	if err := raw.Control(func(orig uintptr) {
		fd, serr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || serr != nil {
		return nil, errors.Join(err, serr)
	}
	// The blocking flag belongs to the open socket, shared with conn's
	// descriptor: set it only once nothing else can fail.
	sa, err := unix.Getsockname(fd)
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	_, inet6 := sa.(*unix.SockaddrInet6)
	c := &blockingConn{fd: fd, inet6: inet6, local: conn.LocalAddr(), release: release}
	conn.Close()
	return c, nil
}

func (c *blockingConn) sendTo(data []byte, addr *net.UDPAddr) error {
	if addr != c.dstAddr {
		if err := c.setDst(addr); err != nil {
			return c.opError("write", err)
		}
	}
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), 0, uintptr(unsafe.Pointer(&c.dst)), uintptr(c.dstLen))
		if errno != unix.EINTR {
			return c.opError("write", errnoErr(errno))
		}
	}
}

func (c *blockingConn) setDst(addr *net.UDPAddr) error {
	c.dst = unix.RawSockaddrAny{}
	if !c.inet6 {
		ip4 := addr.IP.To4()
		if ip4 == nil {
			return errors.New("IPv6 peer on an IPv4 socket")
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.dst))
		sa.Family = unix.AF_INET
		putPort(&sa.Port, addr.Port)
		copy(sa.Addr[:], ip4)
		c.dstLen = unix.SizeofSockaddrInet4
	} else {
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.dst))
		sa.Family = unix.AF_INET6
		putPort(&sa.Port, addr.Port)
		copy(sa.Addr[:], addr.IP.To16())
		if addr.Zone != "" {
			if z, err := strconv.Atoi(addr.Zone); err == nil {
				sa.Scope_id = uint32(z)
			} else if ifi, err := net.InterfaceByName(addr.Zone); err == nil {
				sa.Scope_id = uint32(ifi.Index)
			}
		}
		c.dstLen = unix.SizeofSockaddrInet6
	}
	c.dstAddr = addr
	return nil
}

// putPort and getPort: sockaddr ports are stored in network byte order.
func putPort(field *uint16, port int) {
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(field))[:], uint16(port))
}

func getPort(field *uint16) int {
	return int(binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(field))[:]))
}

func errnoErr(errno unix.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func (c *blockingConn) setDeadline(d time.Duration) error {
	c.deadline = time.Now().Add(d)
	c.fresh = true
	return c.setRcvtimeo(d)
}

// setRcvtimeo skips the system call when the value is already set: in a
// transfer every block sets the same timeout.
func (c *blockingConn) setRcvtimeo(d time.Duration) error {
	if d == c.rcvtimeo {
		return nil
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return c.opError("set timeout", err)
	}
	c.rcvtimeo = d
	return nil
}

func (c *blockingConn) readFrom(buffer []byte) (int, *net.UDPAddr, error) {
	// A read after the first one since setDeadline (the sender skipped a
	// stray datagram) waits only for what is left, as a deadline would.
	if !c.fresh {
		left := time.Until(c.deadline)
		if left < time.Microsecond {
			return 0, nil, c.timeout()
		}
		if err := c.setRcvtimeo(left); err != nil {
			return 0, nil, err
		}
	}
	c.fresh = false
	var (
		n     uintptr
		errno unix.Errno
	)
	for {
		fromLen := uint32(unix.SizeofSockaddrAny)
		n, _, errno = unix.Syscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&buffer[0])), uintptr(len(buffer)), 0, uintptr(unsafe.Pointer(&c.from)), uintptr(unsafe.Pointer(&fromLen)))
		if errno != unix.EINTR {
			break
		}
	}
	switch errno {
	case 0:
	case unix.EAGAIN:
		return 0, nil, c.timeout()
	default:
		return 0, nil, c.opError("read", errno)
	}
	var ip net.IP
	var port int
	switch c.from.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.from))
		ip, port = sa.Addr[:], getPort(&sa.Port)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.from))
		ip, port = sa.Addr[:], getPort(&sa.Port)
	default:
		return 0, nil, c.opError("read", errors.New("datagram without an IP source address"))
	}
	// The sender only compares and keeps the address it gets: the same
	// peer again (every ACK) gets the same value, without an allocation.
	if c.lastFrom == nil || c.lastFrom.Port != port || !c.lastFrom.IP.Equal(ip) {
		c.lastFrom = &net.UDPAddr{IP: append(net.IP(nil), ip...), Port: port}
	}
	return int(n), c.lastFrom, nil
}

func (c *blockingConn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.local, Err: err}
}

func (c *blockingConn) timeout() error {
	return &connectionError{error: errors.New("read " + c.local.String() + ": timeout"), timeout: true, temporary: true}
}

func (c *blockingConn) close() {
	unix.Close(c.fd)
	c.release()
}
