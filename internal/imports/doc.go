// Package imports holds the layout's rules as a test: which package of
// pxeops may import which, read from `go list` on every test run, so an
// arrow the README's Layout forbids fails CI instead of waiting for a
// reviewer. It has no code of its own.
package imports
