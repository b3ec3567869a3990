// Package tftp is github.com/pin/tftp/v3 at v3.1.0 (MIT, LICENSE beside
// it), vendored as a package of pxeops with the patches PATCHES.md lists:
// blocking reads for transfer sockets, admission with refusals a client
// hears, strict read requests, and Serve ending when its socket closes.
// It implements TFTP (RFC 1350) with the blksize and tsize options.
// serve/tftpserver is its only user in pxeops.
package tftp
