package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pxeops/pxeops/internal/gittest"
	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/serve/httpserver"
)

// TestMain lets a test run this binary as pxeops itself, to kill it.
func TestMain(m *testing.M) {
	if os.Getenv("PXEOPS_TEST_AS_MAIN") == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const updateBranch = "pxeops/update-flatcar-stable"

// releaseAndFleet is a release server offering 2.0.0 (kernel, and a fixed
// initrd) and a config repository tracking it, with extra pxeops.yaml
// omaha settings.
func releaseAndFleet(t *testing.T, kernel []byte, settings ...string) (*omahatest.Release, *gittest.Remote) {
	t.Helper()
	rel := omahatest.New(t)
	remote := gittest.New(t)
	rel.CommitFleet(remote, settings...)
	rel.PublishImage("2.0.0", kernel, []byte("initrd 2"))
	rel.SetLatest("2.0.0")
	return rel, remote
}

func TestOmahaSyncFromWorkingCopy(t *testing.T) {
	_, remote := releaseAndFleet(t, []byte("kernel 2"))
	assets := t.TempDir()
	args := []string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", assets, "--push", "--author", "Updater <updates@example.test>"}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), args, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if want := "flatcar-stable: 1.0.0 → 2.0.0 proposed on branch " + updateBranch; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "pushed") {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	if author := remote.Git("--git-dir", remote.Bare, "log", "-1", "--format=%an <%ae>", updateBranch); author != "Updater <updates@example.test>" {
		t.Errorf("author %q", author)
	}
	// The working copy's checkout is untouched; the branch is beside it.
	if status := remote.Git("status", "--porcelain"); status != "" {
		t.Errorf("working copy changed: %s", status)
	}
	// pxeops check accepts the proposed branch.
	out.Reset()
	if code := run(context.Background(), []string{"check", "--ref", updateBranch, remote.Work}, &out, &errOut); code != exitOK {
		t.Fatalf("check of the branch: exit %d\n%s", code, out.String())
	}
	// A second run: nothing new.
	out.Reset()
	if code := run(context.Background(), args, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "already proposed") {
		t.Fatalf("second run: exit %d %q", code, out.String())
	}
}

func TestOmahaSyncExitCodes(t *testing.T) {
	rel, remote := releaseAndFleet(t, []byte("kernel 2"))
	rel.Put(omahatest.Dir("stable", "2.0.0")+"flatcar_production_pxe.vmlinuz", []byte("evil"), rel.SignNow([]byte("kernel 2")))
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", t.TempDir()}, &out, &errOut)
	if code != exitInvalid || !strings.Contains(out.String(), "failed at verify (needs a person)") {
		t.Fatalf("tampered: exit %d %q", code, out.String())
	}
	publicKey, lockedKey := filepath.Join(t.TempDir(), "public.asc"), filepath.Join(t.TempDir(), "locked.asc")
	must(t, os.WriteFile(publicKey, []byte(rel.PublicKey()), 0o600))
	must(t, os.WriteFile(lockedKey, lockedPrivateKey(t), 0o600))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"omaha"}, "Usage: pxeops omaha sync"},
		{[]string{"omaha", "sync", "--assets-dir", "x"}, "--repo is required"},
		{[]string{"omaha", "sync", "--repo", remote.Work}, "--assets-dir is required"},
		{[]string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", "x", "--author", "nobody"}, "--author"},
		{[]string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", "x", "--sign-key", publicKey}, "not an armored private key"},
		{[]string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", "x", "--sign-key", lockedKey}, "passphrase-protected"},
	} {
		errOut.Reset()
		if code := run(context.Background(), c.args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d %q, want %q", c.args, code, errOut.String(), c.want)
		}
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"omaha", "sync", "--repo", t.TempDir(), "--assets-dir", "x"}, &out, &errOut); code != exitInvalid || !strings.Contains(errOut.String(), "needs a git repository") {
		t.Errorf("plain directory: exit %d %q", code, errOut.String())
	}
}

// lockedPrivateKey is an armored private key protected by a passphrase.
func lockedPrivateKey(t *testing.T) []byte {
	t.Helper()
	e, err := pgp.NewEntity("locked", "", "locked@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	must(t, err)
	must(t, e.EncryptPrivateKeys([]byte("secret"), nil))
	var b bytes.Buffer
	w, err := armor.Encode(&b, pgp.PrivateKeyType, nil)
	must(t, err)
	must(t, e.SerializePrivateWithoutSigning(w, nil))
	w.Close()
	return b.Bytes()
}

// A process killed in the middle of a download leaves nothing the asset
// store serves; the next run completes.
func TestOmahaSyncKilledMidDownload(t *testing.T) {
	kernel := bytes.Repeat([]byte("K"), 1<<20)
	rel, remote := releaseAndFleet(t, kernel)
	kpath := omahatest.Dir("stable", "2.0.0") + "flatcar_production_pxe.vmlinuz"
	release := rel.HoldAt(kpath)
	assets := t.TempDir()

	cmd := exec.Command(os.Args[0], "omaha", "sync", "--repo", remote.Work, "--assets-dir", assets)
	cmd.Env = append(os.Environ(), "PXEOPS_TEST_AS_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(assets, ".partial")
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(partial)
		if len(entries) > 0 {
			if info, err := entries[0].Info(); err == nil && info.Size() >= int64(len(kernel)/2) {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no partial download appeared\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	release()

	entries, _ := os.ReadDir(partial)
	if len(entries) == 0 {
		t.Fatal("the killed download left no partial file; the test did not kill mid-download")
	}
	h, err := httpserver.New(nil, httpserver.Options{AssetsDir: assets})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/assets/.partial/"+e.Name(), nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("partial %s served: %d", e.Name(), rec.Code)
		}
	}
	if kept := assetFiles(t, assets); len(kept) > 0 {
		t.Fatalf("files at servable paths after the kill: %v", kept)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"omaha", "sync", "--repo", remote.Work, "--assets-dir", assets}, &out, &errOut); code != exitOK {
		t.Fatalf("run after the kill: exit %d %s%s", code, out.String(), errOut.String())
	}
	if kept := assetFiles(t, assets); len(kept) != 4 { // kernel, initrd and their .sig
		t.Fatalf("kept %v", kept)
	}
}

// assetFiles lists the regular files outside dot directories.
func assetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != dir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Inside serve: a host's update check, forwarded upstream in proxy mode,
// reveals a newer release; one pass mirrors it and pushes the branch;
// merging the branch is the deploy: machines then boot the mirrored
// kernel from /assets/.
func TestServeProxyModeMirrorsAndMergeDeploys(t *testing.T) {
	kernel := []byte("the 2.0.0 kernel")
	_, remote := releaseAndFleet(t, kernel, "  proxy: true")
	assets := t.TempDir()
	s := startServe(t, remote.FileURL(), "--state-dir", t.TempDir(), "--poll", "200ms", "--assets-dir", assets)
	s.eventually(t, "the first revision is served", func() bool { return s.status(t).Served != nil })

	request, err := os.ReadFile("../../omaha/testdata/flatcar-request.xml")
	must(t, err)
	request = bytes.ReplaceAll(request, []byte(`version="3975.2.0"`), []byte(`version="1.0.0"`))
	resp, err := http.Post(s.url+"/v1/update/", "text/xml", bytes.NewReader(request))
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `status="noupdate"`) {
		t.Fatalf("host answer %d %s", resp.StatusCode, body)
	}

	var st struct {
		Omaha struct {
			Updater  string
			Images   map[string]struct{ State, Branch string }
			Keyrings map[string]struct{ Mode, Source string }
			Census   struct{ Hosts int }
		}
	}
	s.eventually(t, "the update is proposed", func() bool {
		_, body, _ := s.get("/status")
		json.Unmarshal([]byte(body), &st)
		return st.Omaha.Images["flatcar-stable"].State == "proposed"
	})
	if k := st.Omaha.Keyrings["flatcar"]; st.Omaha.Census.Hosts != 1 || st.Omaha.Updater != "on" || k.Mode != "repository" || k.Source != "keys/release.asc" {
		t.Errorf("omaha status %+v", st.Omaha)
	}
	branchHead := remote.Git("--git-dir", remote.Bare, "rev-parse", updateBranch)

	// Review done: merge and push. The next revision boots the mirrored image.
	remote.Git("fetch", "-q", "origin")
	remote.Git("merge", "-q", "--ff-only", "origin/"+updateBranch)
	remote.Git("push", "-q", "origin", "HEAD:main")
	var script string
	s.eventually(t, "the merged image is served", func() bool {
		_, script, _ = s.get("/ipxe?mac=52:54:00:00:00:09")
		return strings.Contains(script, "/assets/")
	})
	kernelURL := ""
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "kernel ") {
			kernelURL = strings.Fields(line)[1]
		}
	}
	path := kernelURL[strings.Index(kernelURL, "/assets/"):]
	if code, got, _ := s.get(path); code != 200 || got != string(kernel) {
		t.Fatalf("GET %s: %d %q", path, code, got)
	}
	if merged := remote.Git("rev-parse", "HEAD"); merged != branchHead {
		t.Errorf("merged %s, branch was %s", merged, branchHead)
	}
}

// Without --assets-dir the updater is off, and /status says why.
func TestServeSaysWhyTheUpdaterIsOff(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "profiles"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "profiles", "p.yaml"), []byte("kernel: /assets/k\n"), 0o644))
	s := startServe(t, dir)
	_, body, _ := s.get("/status")
	var st struct{ Omaha struct{ Updater string } }
	json.Unmarshal([]byte(body), &st)
	if !strings.HasPrefix(st.Omaha.Updater, "off: --assets-dir is required") {
		t.Errorf("updater %q", st.Omaha.Updater)
	}
}

// A git URL behind token auth (git http-backend): cloned into the state
// dir, the branch pushed over HTTP with the token, which never shows.
func TestOmahaSyncPushesOverHTTPWithToken(t *testing.T) {
	_, remote := releaseAndFleet(t, []byte("kernel 2"))
	const token = "omaha-push-token-123"
	url := remote.HTTP(token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	state := t.TempDir()
	args := []string{"omaha", "sync", "--repo", url, "--state-dir", state, "--assets-dir", t.TempDir(), "--push"}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), append(args, "--token-file", tokenFile), &out, &errOut); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "pushed") || strings.Contains(out.String()+errOut.String(), token) {
		t.Errorf("output %q", out.String()+errOut.String())
	}
	if head := remote.Git("--git-dir", remote.Bare, "rev-parse", updateBranch); len(head) != 40 {
		t.Fatalf("branch not on the remote: %q", head)
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), args, &out, &errOut); code != exitInvalid {
		t.Errorf("without the token: exit %d", code)
	}
	if strings.Contains(out.String()+errOut.String(), token) {
		t.Error("the token shows in the output")
	}
}
