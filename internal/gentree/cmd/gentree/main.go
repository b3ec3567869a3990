// Command gentree writes a synthetic config repository for load tests:
//
//	go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 /tmp/fleet
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pxeops/pxeops/internal/gentree"
)

func main() {
	groups := flag.Int("groups", 10000, "number of groups (one machine each)")
	profiles := flag.Int("profiles", 100, "number of profiles")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gentree [-groups N] [-profiles N] DIR")
		os.Exit(2)
	}
	if err := gentree.Write(flag.Arg(0), *groups, *profiles); err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}
