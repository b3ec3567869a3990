// Package netascii converts to and from TFTP's netascii transfer mode
// (CR LF line ends, CR NUL for a bare CR); part of the vendored pin/tftp.
package netascii
