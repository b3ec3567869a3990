package source

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// What every kind of --source looks like once redacted: HTTPS loses the
// whole userinfo (a token is often the user name), SSH keeps its login
// and loses a password, what has no userinfo is untouched.
func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:s3cret@git.example/fleet.git":       "https://git.example/fleet.git",
		"https://ghp_tokenAsUser@git.example/fleet.git":   "https://git.example/fleet.git",
		"http://user:p%40ss%2Fw@git.example:8443/f.git":   "http://git.example:8443/f.git",
		"https://user:@git.example/fleet.git":             "https://git.example/fleet.git",
		"https://git.example/fleet.git":                   "https://git.example/fleet.git",
		"https://git.example/@scope/fleet.git":            "https://git.example/@scope/fleet.git",
		"ssh://git@git.example/fleet.git":                 "ssh://git@git.example/fleet.git",
		"ssh://git:hunter22@git.example:2222/fleet.git":   "ssh://git@git.example:2222/fleet.git",
		"git@git.example:fleet.git":                       "git@git.example:fleet.git",
		"git://user:pw@git.example/fleet.git":             "git://git.example/fleet.git",
		"file:///srv/fleet.git":                           "file:///srv/fleet.git",
		"file://user:pw@/srv/fleet.git":                   "file:///srv/fleet.git",
		"examples/quickstart":                             "examples/quickstart",
		"./a@b:c/d":                                       "./a@b:c/d",
		"https://user:pa/ss@git.example/fleet.git":        "https://git.example/fleet.git", // not a URL url.Parse takes
		"https://user:bad%zzescape@git.example/fleet.git": "https://git.example/fleet.git",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Messages lose the URL's credentials in every form they take, and the
// token; errors.Is still sees through; an error with nothing to hide
// stays the same error.
func TestRedactorErrors(t *testing.T) {
	const raw = "https://bob:p%40ss-word@git.example/fleet.git"
	r := NewRedactor(raw, &githttp.BasicAuth{Username: "bob", Password: "token-from-file"})
	for _, msg := range []string{
		`Get "` + raw + `/info/refs": dial tcp: connection refused`,
		`Get "https://bob:***@git.example/fleet.git/info/refs": nope`, // net/http's own redaction keeps the user
		"auth as bob:p%40ss-word failed",
		"password p@ss-word refused",
		"token token-from-file refused",
	} {
		err := r.Error(fmt.Errorf("fetch: %w", errors.Join(errors.New(msg), fs.ErrNotExist)))
		for _, secret := range []string{"p@ss-word", "p%40ss-word", "token-from-file", "bob:"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%q redacted to %q, still has %q", msg, err, secret)
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q: redaction hides the wrapped error", msg)
		}
	}
	if got := r.String(`Get "` + raw + `": refused`); got != `Get "https://git.example/fleet.git": refused` {
		t.Errorf("the URL becomes %q, want the redacted URL", got)
	}
	plain := errors.New("ref \"main\" not found on https://git.example/fleet.git")
	if r.Error(plain) != plain || r.Error(nil) != nil {
		t.Error("an error with nothing to hide was changed")
	}
	// The user git of an SSH URL is a login, not a secret: kept.
	ssh := NewRedactor("ssh://git@git.example/fleet.git", nil)
	if got := ssh.String("git@git.example: permission denied for git"); got != "git@git.example: permission denied for git" {
		t.Errorf("ssh login redacted: %q", got)
	}
}

// Credentials in an http(s) URL become Basic auth; a token from a file
// or the environment wins over the URL's password, keeping its user.
func TestAuthFromURL(t *testing.T) {
	t.Setenv("PXEOPS_TEST_TOKEN", "env-token")
	for _, c := range []struct {
		raw        string
		o          AuthOptions
		user, pass string
	}{
		{"https://alice:pw@h/f.git", AuthOptions{}, "alice", "pw"},
		{"https://tokenuser@h/f.git", AuthOptions{}, "tokenuser", ""},
		{"https://alice:pw@h/f.git", AuthOptions{TokenEnv: "PXEOPS_TEST_TOKEN"}, "alice", "env-token"},
		{"https://h/f.git", AuthOptions{TokenEnv: "PXEOPS_TEST_TOKEN"}, "x-access-token", "env-token"},
	} {
		a, err := Auth(c.raw, c.o)
		b, ok := a.(*githttp.BasicAuth)
		if err != nil || !ok || b.Username != c.user || b.Password != c.pass {
			t.Errorf("Auth(%s, %+v) = %#v, %v; want %s:%s", c.raw, c.o, a, err, c.user, c.pass)
		}
	}
	for _, raw := range []string{"https://h/f.git", "git://u:p@h/f.git", "file:///f.git"} {
		if a, err := Auth(raw, AuthOptions{}); a != nil || err != nil {
			t.Errorf("Auth(%s) = %#v, %v; want none", raw, a, err)
		}
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"https://user:s3cret@git.example/fleet.git", "https://tok@h/f.git", "ssh://git:pw@h:22/f.git",
		"git@h:f.git", "file:///srv/f.git", "https://u:pa/ss@h/f.git", "http://u:%zz@h", "https://h/@a/b",
		"https://u:p@h?x=@y#@z", "ssh://u:p@[::1]:22/x", "examples/quickstart",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := Redact(raw)
		if again := Redact(got); again != got {
			t.Fatalf("Redact(%q) = %q, then %q", raw, got, again)
		}
		if !strings.Contains(raw, "://") && got != raw {
			t.Fatalf("Redact(%q) = %q changed a non-URL", raw, got)
		}
		if scheme, info, _, ok := cutUserinfo(got); ok && (!isSSH(scheme) || strings.Contains(info, ":")) {
			t.Fatalf("Redact(%q) = %q keeps userinfo %q", raw, got, info)
		}
		// A password of the input never survives the Redactor.
		if in, err := url.Parse(raw); err == nil && in.User != nil && strings.Contains(raw, "://") {
			if p, _ := in.User.Password(); len(p) >= minSecret {
				if s := NewRedactor(raw, nil).String("error: " + raw); strings.Contains(s, p) {
					t.Fatalf("Redactor(%q) left the password: %q", raw, s)
				}
			}
		}
	})
}
