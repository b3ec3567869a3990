package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Credentials given in the URL's userinfo (user:password, or a token as
// the user) and in --token-file never show: not in a log line, /status,
// /metrics, check's output or errors, nor in any file under the state
// dir (the clone's remote included, even one an older pxeops stored
// with them; serve's source and updater share that one clone), whether the remote answers, refuses the password or is
// unreachable.
func TestCredentialsNeverShow(t *testing.T) {
	urlSecret, tokenSecret := "urlsecret"+randomHex(t), "tokensecret"+randomHex(t)
	_, remote := releaseAndFleet(t, []byte("kernel 2"), "  proxy: true")
	tokenURL := remote.HTTP(tokenSecret) // wants the token as the password
	passURL := remote.HTTP(urlSecret)    // wants the URL's password
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(tokenSecret+"\n"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	unreachable := "http://" + ln.Addr().String() + "/fleet.git"
	ln.Close()
	with := func(base, userinfo string) string { return strings.Replace(base, "http://", "http://"+userinfo+"@", 1) }

	seen := map[string]string{} // where → what a reader could see
	state, assets := t.TempDir(), t.TempDir()
	// An older pxeops stored the URL with its credentials in the clone.
	for _, clone := range []string{"repo.git", "omaha.git"} {
		dir := filepath.Join(state, clone)
		remote.Git("init", "-q", "--bare", dir)
		remote.Git("--git-dir", dir, "remote", "add", "origin", with(tokenURL, "old:"+urlSecret))
	}

	// The good remote: the token as the user in the URL, the password
	// from --token-file. The updater clones, proposes and pushes too.
	s := startServe(t, with(tokenURL, urlSecret), "--state-dir", state, "--token-file", tokenFile, "--poll", "200ms", "--assets-dir", assets)
	s.eventually(t, "the remote's tree is served", func() bool { return s.status(t).Served != nil })
	askForUpdate(t, s)
	s.eventually(t, "the updater proposed and pushed", func() bool {
		return omahaOf(t, s).Images["flatcar-stable"].Pushed
	})
	s.collect(t, "serve (good remote)", seen)
	if _, err := os.Stat(filepath.Join(state, "omaha.git")); err == nil {
		t.Error("serve kept (or made) a second clone of the remote, omaha.git, where an earlier version left credentials")
	}
	for _, clone := range []string{"repo.git"} {
		cfg, err := os.ReadFile(filepath.Join(state, clone, "config"))
		if err != nil || !strings.Contains(string(cfg), "url = "+tokenURL+"\n") {
			t.Errorf("%s/config does not name the remote without credentials (%v):\n%s", clone, err, cfg)
		}
	}

	// Failing remotes, each while the kept revision serves: the password
	// refused, nothing listening, no such repository.
	for name, flags := range map[string][]string{
		"wrong password": {"--source", with(tokenURL, "user:"+urlSecret)},
		"unreachable":    {"--source", with(unreachable, urlSecret), "--token-file", tokenFile},
		"no such path":   {"--source", with(strings.Replace(tokenURL, "fleet.git", "nope.git", 1), urlSecret), "--token-file", tokenFile},
	} {
		s := startServe(t, "unused", append(flags, "--state-dir", state, "--poll", "200ms", "--assets-dir", assets)...)
		s.eventually(t, name+": the source reports an error", func() bool {
			_, body, _ := s.get("/status")
			var st struct {
				Source struct {
					LastError string `json:"last_error"`
				}
			}
			json.Unmarshal([]byte(body), &st)
			return st.Source.LastError != ""
		})
		s.eventually(t, name+": the kept revision is served", func() bool { return s.status(t).Served != nil })
		askForUpdate(t, s) // the proxy's trigger needs the served tree's policy
		s.eventually(t, name+": the updater reports an error", func() bool { return omahaOf(t, s).Error != "" })
		s.collect(t, "serve ("+name+")", seen)
	}

	// check, through success and failure.
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{with(passURL, "user:"+urlSecret)}, exitOK},
		{[]string{"--format", "json", "--token-file", tokenFile, with(tokenURL, urlSecret)}, exitOK},
		{[]string{with(tokenURL, "user:"+urlSecret)}, exitInvalid},
		{[]string{"--token-file", tokenFile, with(unreachable, urlSecret)}, exitInvalid},
	} {
		code, out, errOut := runCLI(t, append([]string{"check"}, c.args...)...)
		if code != c.code {
			t.Errorf("check %s: exit %d, want %d\n%s%s", c.args, code, c.code, out, errOut)
		}
		seen["check "+strings.Join(c.args, " ")] = out + errOut
	}

	// omaha sync clones into the state dir too.
	syncState := t.TempDir()
	for _, repo := range []string{with(tokenURL, urlSecret), with(unreachable, urlSecret)} {
		code, out, errOut := runCLI(t, "omaha", "sync", "--repo", repo, "--token-file", tokenFile, "--state-dir", syncState, "--assets-dir", t.TempDir())
		seen["omaha sync "+repo] = out + errOut
		if code == exitUsage {
			t.Errorf("omaha sync --repo %s: exit %d\n%s%s", repo, code, out, errOut)
		}
	}

	for _, dir := range []string{state, syncState} {
		must(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			seen[path] = string(b)
			return err
		}))
	}
	for where, text := range seen {
		for _, secret := range []string{urlSecret, tokenSecret} {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s shows a secret: …%s…", where, text[max(0, i-120):min(len(text), i+len(secret)+40)])
			}
		}
	}
	// Not vacuous: the failures were seen, and said what went wrong.
	for _, want := range []string{"authentication required", "connection refused", "repository not found"} {
		found := false
		for _, text := range seen {
			found = found || strings.Contains(text, want)
		}
		if !found {
			t.Errorf("no log, status or output says %q", want)
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	_, err := rand.Read(b)
	must(t, err)
	return hex.EncodeToString(b)
}

// askForUpdate reports a host on 1.0.0, which in proxy mode starts an
// updater pass when the update service offers more.
func askForUpdate(t *testing.T, s *testServer) {
	t.Helper()
	request, err := os.ReadFile("../../omaha/testdata/flatcar-request.xml")
	must(t, err)
	request = bytes.ReplaceAll(request, []byte(`version="3975.2.0"`), []byte(`version="1.0.0"`))
	resp, err := http.Post(s.url+"/v1/update/", "text/xml", bytes.NewReader(request))
	must(t, err)
	resp.Body.Close()
}

type omahaDoc struct {
	Error  string
	Images map[string]struct{ Pushed bool }
}

func omahaOf(t *testing.T, s *testServer) omahaDoc {
	_, body, _ := s.get("/status")
	var st struct{ Omaha omahaDoc }
	json.Unmarshal([]byte(body), &st)
	return st.Omaha
}

// collect stops the server and records its /status, /metrics and log.
func (s *testServer) collect(t *testing.T, name string, seen map[string]string) {
	t.Helper()
	_, seen[name+" /status"], _ = s.get("/status")
	_, seen[name+" /metrics"], _ = s.get("/metrics")
	s.stop()
	s.eventually(t, name+" shuts down", func() bool { return strings.Contains(s.logs.String(), "shutting down") })
	seen[name+" log"] = s.logs.String()
}
