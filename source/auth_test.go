package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pxeops/pxeops/internal/gittest"
)

// HTTPS with a token: git http-backend behind a server that wants the
// token as the Basic auth password.
func TestGitHTTPSToken(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a")})
	const token = "tok-123-secret"
	url := r.HTTP(token)

	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	t.Setenv("PXEOPS_TEST_TOKEN", token)
	for name, o := range map[string]AuthOptions{"file": {TokenFile: tokenFile}, "env": {TokenEnv: "PXEOPS_TEST_TOKEN"}} {
		auth, err := Auth(url, o)
		if err != nil || auth == nil {
			t.Fatalf("%s: Auth = %v, %v", name, auth, err)
		}
		g := newGit(t, url, t.TempDir(), func(opts *GitOptions) { opts.Auth = auth })
		if rev, err := g.Once(context.Background()); err != nil || rev.ID != c1 {
			t.Errorf("token from %s: %s %v", name, rev.ID, err)
		}
	}
	g := newGit(t, url, t.TempDir())
	_, err := g.Once(context.Background())
	if err == nil {
		t.Fatal("fetched without the token")
	}
	if strings.Contains(err.Error(), token) || strings.Contains(fmt.Sprint(g.State()), token) {
		t.Errorf("the token leaks into errors or state: %v", err)
	}
}

// sshServer serves git-upload-pack for one repository over SSH, accepting
// one client key.
func sshServer(t *testing.T, bare string, hostKey ssh.Signer, client ssh.PublicKey) string {
	t.Helper()
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if string(key.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSH(conn, cfg, bare)
		}
	}()
	return ln.Addr().String()
}

func serveSSH(conn net.Conn, cfg *ssh.ServerConfig, bare string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				cmd := exec.Command("git-upload-pack", bare)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := 0
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				return
			}
		}()
	}
}

func ed25519Signer(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// SSH with a key and a known_hosts file; a host key that does not match
// is an error, never skipped.
func TestGitSSHKnownHosts(t *testing.T) {
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack not on PATH")
	}
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a")})
	host, _ := ed25519Signer(t)
	impostor, _ := ed25519Signer(t)
	clientSigner, clientKey := ed25519Signer(t)
	addr := sshServer(t, r.Bare, host, clientSigner.PublicKey())
	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	hostsFor := func(name string, key ssh.PublicKey) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n"), 0o600)
		return f
	}
	url := "ssh://git@" + addr + "/fleet.git"

	auth, err := Auth(url, AuthOptions{SSHKey: keyFile, KnownHosts: hostsFor("good", host.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	g := newGit(t, url, t.TempDir(), func(o *GitOptions) { o.Auth = auth })
	if rev, err := g.Once(context.Background()); err != nil || rev.ID != c1 {
		t.Fatalf("with the right host key: %s %v", rev.ID, err)
	}

	auth, err = Auth(url, AuthOptions{SSHKey: keyFile, KnownHosts: hostsFor("wrong", impostor.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	g = newGit(t, url, t.TempDir(), func(o *GitOptions) { o.Auth = auth })
	if _, err := g.Once(context.Background()); err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("with a mismatched host key: %v, want a key mismatch error", err)
	}
	if _, err := Auth(url, AuthOptions{SSHKey: keyFile}); err == nil {
		t.Error("an SSH key without known_hosts was accepted")
	}
}

// Credentials in the URL are the auth when none is given; the clone
// stores the URL without them, and errors never show them.
func TestGitURLCredentials(t *testing.T) {
	r := gittest.New(t)
	c1 := r.Commit("one", map[string]string{"groups/g.yaml": groupFile("a")})
	const secret = "url-secret-456"
	url := r.HTTP(secret)
	state := t.TempDir()
	withPass := strings.Replace(url, "http://", "http://user:"+secret+"@", 1)
	if rev, err := newGit(t, withPass, state).Once(context.Background()); err != nil || rev.ID != c1 {
		t.Fatalf("with the password in the URL: %s %v", rev.ID, err)
	}
	if cfg, _ := os.ReadFile(filepath.Join(state, "repo.git", "config")); strings.Contains(string(cfg), secret) || !strings.Contains(string(cfg), url) {
		t.Errorf("the clone's config:\n%s", cfg)
	}
	g := newGit(t, strings.Replace(url, "http://", "http://"+secret+"@", 1), t.TempDir()) // as the user: refused
	_, err := g.Once(context.Background())
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprint(g.State()), secret) {
		t.Errorf("a token as the user name: %v, state %+v", err, g.State())
	}
}
