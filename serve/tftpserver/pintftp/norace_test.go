//go:build !race

package tftp

// raceEnabled: this test binary was built with -race (pxeops patch).
const raceEnabled = false
