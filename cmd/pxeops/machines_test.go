package main

import (
	"net/http"
	"strings"
	"testing"
)

// pxeops machines and machine reset against a running serve that a
// machine booted from and whose installer reported.
func TestMachinesAndReset(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "profiles/p.yaml", profileWith("v=1"))
	write(t, dir, "groups/one.yaml", group(mac1))
	s := startServe(t, dir)
	s.servesScript(t, mac1, "v=1")

	code, out, errOut := runCLI(t, "machines", "--admin", s.url)
	if code != exitOK || !strings.Contains(out, mac1) || !strings.Contains(out, " ipxe ") || !strings.Contains(out, " one ") {
		t.Fatalf("machines: exit %d\n%s%s", code, out, errOut)
	}
	resp, err := http.Post(s.url+"/v1/machines/"+mac1+"/installed", "text/plain", strings.NewReader("done"))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST installed: %v %v", resp, err)
	}
	resp.Body.Close()
	code, out, _ = runCLI(t, "machines", "--admin", s.url, strings.ToUpper(mac1))
	if code != exitOK || !strings.Contains(out, " installed ") || strings.Contains(out, "  -\n") || !strings.Contains(out, "STAGE") {
		t.Fatalf("machines MAC after the report: exit %d\n%s", code, out)
	}

	t.Logf("machines MAC:\n%s", out)
	code, out, errOut = runCLI(t, "machine", "reset", "--admin", s.url, mac1)
	if code != exitOK || !strings.Contains(out, mac1+": reset") {
		t.Fatalf("machine reset: exit %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "machine", "reset", "--admin", s.url, mac1)
	if code != exitInvalid || !strings.Contains(errOut, "404") || !strings.Contains(errOut, "not installed") {
		t.Errorf("second reset: exit %d %q, want 1 and not installed", code, errOut)
	}
	code, out, _ = runCLI(t, "machines", "--admin", s.url, mac1)
	if code != exitOK || !strings.HasSuffix(strings.SplitN(out, "\n", 3)[1], "-") {
		t.Errorf("machines MAC after reset shows it installed:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"machines", "--admin", s.url, "nope"}, exitUsage, `MAC "nope"`},
		{[]string{"machines", "--admin", "localhost:1"}, exitUsage, "--admin localhost:1: want http://host:port"},
		{[]string{"machines", "--admin", s.url, "52:54:00:00:00:99"}, exitInvalid, "404"},
		{[]string{"machine", "reset", "--admin", s.url}, exitUsage, "want one MAC"},
		{[]string{"machine", "frob"}, exitUsage, "Usage: pxeops machine reset"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d %q, want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
