//go:build pins

// Package pins keeps the required libraries in go.mod at their pinned
// versions before the packages that use them exist; the build tag keeps
// it out of every build.
package pins

import (
	_ "github.com/ProtonMail/go-crypto/openpgp"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/insomniacslk/dhcp/dhcpv4"
	_ "gopkg.in/yaml.v3"
)
