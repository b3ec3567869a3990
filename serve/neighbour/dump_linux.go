package neighbour

import "syscall"

// dump asks the kernel for every neighbour entry, IPv4 and IPv6
// (RTM_GETNEIGH with NLM_F_DUMP), and returns the messages up to
// NLMSG_DONE.
func dump() ([]byte, error) {
	return syscall.NetlinkRIB(syscall.RTM_GETNEIGH, syscall.AF_UNSPEC)
}
