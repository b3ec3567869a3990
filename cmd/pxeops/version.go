package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// init fills version once, before main, from what the go command recorded
// in the binary, so `pxeops version`, /status, the serve log and the Omaha
// User-Agent all say the same. A -ldflags -X main.version=... value wins.
func init() {
	info, ok := debug.ReadBuildInfo()
	version = describeVersion(version, info, ok)
}

// describeVersion is the override if set; else the main module's version
// (v0.1.0 from `go install ...@v0.1.0`; a pseudo-version or "(devel)" from
// a checkout) and, when built in a git work tree, the revision, its commit
// time and "dirty" for uncommitted changes.
func describeVersion(override string, info *debug.BuildInfo, ok bool) string {
	if override != "" {
		return override
	}
	if !ok || info == nil {
		return "(unknown)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{v}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		parts = append(parts, rev[:min(len(rev), 12)])
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, t)
		}
		if settings["vcs.modified"] == "true" {
			parts = append(parts, "dirty")
		}
	}
	return strings.Join(parts, " ")
}

// printVersion is `pxeops version`: the version, then the Go release and
// platform it was built with.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "pxeops %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// userAgent is version v as one User-Agent product token: its first
// word, without the parentheses of "(devel)" and "(unknown)".
func userAgent(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return "pxeops"
	}
	return "pxeops/" + strings.Trim(f[0], "()")
}
