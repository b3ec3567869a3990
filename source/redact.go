package source

import (
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Redact drops credentials from a git URL. It is what logs, /status and
// errors show, and what a clone stores as its remote: credentials travel
// only as auth (see Auth). Over HTTPS the whole userinfo goes, since the
// user name of a token URL is often the token itself. An SSH URL keeps
// its user name (ssh://git@host/..., scp-like git@host:path): that is a
// login, SSH authenticates with the key, so only a password is dropped.
// Anything without "://" (a directory, scp-like syntax) is returned as is.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// A URL go-git cannot use either; still never shown whole. A
		// password may hold a stray "/", so everything up to the last "@"
		// goes.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "://" + rest[at+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if isSSH(u.Scheme) && u.User.Username() != "" {
		if _, hasPass := u.User.Password(); !hasPass {
			return raw
		}
		u.User = url.User(u.User.Username())
	} else {
		u.User = nil
	}
	return u.String()
}

func isSSH(scheme string) bool {
	return scheme == "ssh" || scheme == "git+ssh" || scheme == "ssh+git"
}

func isHTTP(raw string) bool {
	return strings.HasPrefix(raw, "https://") || strings.HasPrefix(raw, "http://")
}

// urlAuth is the Basic auth an http(s) URL's userinfo names, or nil.
func urlAuth(raw string) *githttp.BasicAuth {
	if !isHTTP(raw) {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	pass, _ := u.User.Password()
	return &githttp.BasicAuth{Username: u.User.Username(), Password: pass}
}

// minSecret is the shortest secret replaced wherever it occurs in a
// message: a shorter one would mangle every message and guard little.
// URLs carrying it are replaced whole whatever its length.
const minSecret = 4

// Redactor removes a remote's credentials from messages: the URL as
// given, its userinfo (escaped and not), and an HTTP auth's password
// (the token). Errors of go-git and net/http quote URLs, and a URL held
// before pxeops stripped it (an older clone's config) may carry them.
type Redactor struct {
	raw, shown string
	secrets    []string
}

// NewRedactor is the Redactor of the remote raw, authenticated by auth.
func NewRedactor(raw string, auth transport.AuthMethod) Redactor {
	r := Redactor{shown: Redact(raw)}
	if raw != r.shown {
		r.raw = raw
		_, rest, _ := strings.Cut(raw, "://")
		if u, err := url.Parse(raw); err == nil {
			if end := strings.IndexAny(rest, "/?#"); end >= 0 {
				rest = rest[:end] // the authority, as url.Parse splits it
			}
			p, _ := u.User.Password()
			r.secrets = append(r.secrets, p)
			if !isSSH(u.Scheme) { // ssh keeps its user name
				r.secrets = append(r.secrets, u.User.Username())
			}
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			r.secrets = append(r.secrets, rest[:at]) // the userinfo as written
		}
	}
	if a, ok := auth.(*githttp.BasicAuth); ok && a != nil {
		r.secrets = append(r.secrets, a.Password)
	}
	return r
}

// String returns s with the remote's credentials replaced by "***".
func (r Redactor) String(s string) string {
	if r.raw != "" {
		s = strings.ReplaceAll(s, r.raw, r.shown)
	}
	for _, secret := range r.secrets {
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see what it wraps. An error with nothing to hide is returned as is.
func (r Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := r.String(msg); clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
