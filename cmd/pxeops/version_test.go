package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeVersion(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-trimpath", Value: "true"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"},
		{Key: "vcs.time", Value: "2026-12-01T20:00:00Z"},
	}
	for _, tc := range []struct {
		name, override string
		info           *debug.BuildInfo
		ok             bool
		want           string
	}{
		{"go install @v", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}}, true, "v0.1.0"},
		{"git checkout, no VCS stamp", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "(devel)"},
		{"git checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true,
			"(devel) 1a2b3c4d5e6f 2026-12-01T20:00:00Z"},
		{"git checkout, dirty", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.1-0.20261201200000-1a2b3c4d5e6f+dirty"},
			Settings: append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"})}, true,
			"v0.1.1-0.20261201200000-1a2b3c4d5e6f+dirty 1a2b3c4d5e6f 2026-12-01T20:00:00Z dirty"},
		{"clean", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "false"})}, true,
			"(devel) 1a2b3c4d5e6f 2026-12-01T20:00:00Z"},
		{"short revision", "", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, true, "(devel) abc"},
		{"-ldflags -X wins", "1.2.3-deb", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}, Settings: vcs}, true, "1.2.3-deb"},
		{"no build info", "", nil, false, "(unknown)"},
	} {
		if got := describeVersion(tc.override, tc.info, tc.ok); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// version, -version and --version print the same line: the version the
// binary carries (which /status and the serve log show too), then the Go
// release and platform.
func TestVersionCommandAndFlags(t *testing.T) {
	if version == "" {
		t.Fatal("version was not filled from the build info")
	}
	want := "pxeops " + version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, arg := range []string{"version", "-version", "--version"} {
		if code, out, errOut := runCLI(t, arg); code != exitOK || out != want {
			t.Errorf("%s: exit %d, %q %q; want %q", arg, code, out, errOut, want)
		}
	}
}

func TestUserAgent(t *testing.T) {
	for v, want := range map[string]string{
		"v0.1.0": "pxeops/v0.1.0",
		"(devel) 1a2b3c4d5e6f 2026-12-01T20:00:00Z dirty": "pxeops/devel",
		"": "pxeops",
	} {
		if got := userAgent(v); got != want || strings.ContainsAny(got, " ()") {
			t.Errorf("version %q: User-Agent %q, want %q", v, got, want)
		}
	}
}
