package source

import (
	"net/url"
	"regexp"
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
// Anything without "://" (a directory, scp-like syntax) is returned as is,
// and so is every byte but the userinfo.
func Redact(raw string) string {
	scheme, info, rest, ok := cutUserinfo(raw)
	if !ok {
		return raw
	}
	if user, _, _ := strings.Cut(info, ":"); isSSH(scheme) && user != "" {
		return scheme + "://" + user + "@" + rest
	}
	return scheme + "://" + rest
}

// cutUserinfo splits raw around its userinfo, as url.Parse finds it: in
// the authority, up to its last "@". A URL url.Parse refuses is one
// go-git cannot use either, but still never shown whole: a password may
// hold a stray "/" or "#", so there everything up to the last "@" goes.
func cutUserinfo(raw string) (scheme, info, rest string, ok bool) {
	scheme, after, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", "", false
	}
	authority := after
	if _, err := url.Parse(raw); err == nil {
		if end := strings.IndexAny(after, "/?#"); end >= 0 {
			authority = after[:end]
		}
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return "", "", "", false
	}
	return scheme, after[:at], after[at+1:], true
}

func isSSH(scheme string) bool {
	scheme = strings.ToLower(scheme)
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
	r := Redactor{raw: raw, shown: Redact(raw)}
	add := func(secret string) { // as written, and unescaped
		r.secrets = append(r.secrets, secret)
		if s, err := url.PathUnescape(secret); err == nil && s != secret {
			r.secrets = append(r.secrets, s)
		}
	}
	if scheme, info, _, ok := cutUserinfo(raw); ok {
		user, pass, _ := strings.Cut(info, ":")
		if !isSSH(scheme) {
			add(info)
			add(user)
			add(pass)
		} else if pass != "" { // an SSH login is kept
			add(user + ":" + pass)
			add(pass)
		}
	}
	if a, ok := auth.(*githttp.BasicAuth); ok && a != nil {
		add(a.Password)
	}
	return r
}

// userinfo is the userinfo of a URL quoted in a message.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#@\s"'<>]*)@`)

// String returns s with the remote's credentials replaced by "***", and
// any URL quoted in s redacted as Redact would.
func (r Redactor) String(s string) string {
	if r.raw != r.shown {
		s = strings.ReplaceAll(s, r.raw, r.shown)
	}
	for _, secret := range r.secrets {
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		if user, _, _ := strings.Cut(sub[2], ":"); isSSH(sub[1]) && user != "" {
			return sub[1] + "://" + user + "@" // a login: kept, as Redact keeps it
		}
		return sub[1] + "://"
	})
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
