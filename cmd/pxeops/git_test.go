package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pxeops/pxeops/internal/gittest"
)

const hookSecret = "a-webhook-secret-of-some-length"

func postHook(t testing.TB, s *testServer) int {
	t.Helper()
	body := `{"ref":"refs/heads/main"}`
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(body))
	req, _ := http.NewRequest("POST", s.url+"/hooks/git", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sourceChecks(t *testing.T, s *testServer) int {
	_, body, _ := s.get("/status")
	var st struct{ Source struct{ Checks int } }
	json.Unmarshal([]byte(body), &st)
	return st.Source.Checks
}

// Every merged commit is what the fleet boots: commit, webhook, served
// with the commit as revision; a bad commit keeps the last good one; a
// burst of webhooks is one fetch; the secret never shows.
func TestServeFromGitWithWebhook(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("first", map[string]string{"profiles/p.yaml": profileWith("v=1"), "groups/one.yaml": group(mac1)})
	url, _ := r.Daemon()
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	must(t, os.WriteFile(secretFile, []byte(hookSecret+"\n"), 0o600))
	s := startServe(t, url, "--state-dir", t.TempDir(), "--poll", "1h", "--webhook-secret-file", secretFile)
	s.servesScript(t, mac1, " v=1")
	if _, _, h := s.get("/ipxe?mac=" + mac1); h.Get("X-Pxeops-Revision") != c1 {
		t.Errorf("revision header %q, want commit %s", h.Get("X-Pxeops-Revision"), c1)
	}

	c2 := r.Commit("second", map[string]string{"profiles/p.yaml": profileWith("v=2")})
	if code := postHook(t, s); code != http.StatusAccepted {
		t.Fatalf("webhook answered %d", code)
	}
	s.servesScript(t, mac1, " v=2")
	if _, _, h := s.get("/ipxe?mac=" + mac1); h.Get("X-Pxeops-Revision") != c2 {
		t.Errorf("revision header %q, want %s", h.Get("X-Pxeops-Revision"), c2)
	}

	bad := r.Commit("broken", map[string]string{"groups/one.yaml": "profile: nope\nselector:\n  mac: " + mac1 + "\n"})
	postHook(t, s)
	s.eventually(t, "the bad commit is reported", func() bool {
		a := s.status(t).LastAttempt
		return a != nil && a.Revision == bad && a.Result == "invalid"
	})
	if code, body, h := s.get("/ipxe?mac=" + mac1); code != 200 || !strings.Contains(body, " v=2") || h.Get("X-Pxeops-Revision") != c2 {
		t.Errorf("after a bad commit: %d %q %s, want the script of %s", code, body, h.Get("X-Pxeops-Revision"), c2)
	}

	r.Commit("fixed", map[string]string{"groups/one.yaml": group(mac1), "profiles/p.yaml": profileWith("v=3")})
	before := sourceChecks(t, s)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { postHook(t, s) })
	}
	wg.Wait()
	s.servesScript(t, mac1, " v=3")
	s.eventually(t, "the burst's check is counted", func() bool { return sourceChecks(t, s) > before })
	if n := sourceChecks(t, s) - before; n != 1 {
		t.Errorf("a burst of 100 webhooks made %d remote checks, want 1", n)
	}
	_, status, _ := s.get("/status")
	_, metrics, _ := s.get("/metrics")
	if strings.Contains(status+metrics+s.logs.String(), hookSecret) {
		t.Error("the webhook secret appears in /status, /metrics or the log")
	}
}

// check validates a git URL, or a local repository at a ref, the same
// way it validates a directory.
func TestCheckGit(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("good", map[string]string{"profiles/p.yaml": profileWith("v=1"), "groups/one.yaml": group(mac1)})
	r.Git("tag", "good")
	r.Commit("bad", map[string]string{"groups/one.yaml": "profile: nope\n"})
	code, out, errOut := runCLI(t, "check", r.FileURL())
	if code != exitInvalid || !strings.Contains(out, `groups/one.yaml:1:10: error: profile "nope" does not exist`) {
		t.Errorf("check of the bad head: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "check", "--ref", "good", r.Work)
	if code != exitOK || !strings.Contains(out, "@"+c1[:12]+": valid") {
		t.Errorf("check --ref good of the work repository: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "check", "--ref", "nope", r.FileURL()); code != exitInvalid || !strings.Contains(errOut, `ref "nope" not found`) {
		t.Errorf("missing ref: %d %s", code, errOut)
	}
}
