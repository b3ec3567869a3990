package source

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/pxeops/pxeops/internal/safefile"
)

// IsGitURL reports whether source names a git remote rather than a
// directory: a URL with a scheme, or scp-like user@host:path.
func IsGitURL(source string) bool {
	if strings.Contains(source, "://") {
		return true
	}
	at, colon := strings.Index(source, "@"), strings.Index(source, ":")
	return at > 0 && colon > at && !strings.Contains(source[:at], "/")
}

// AuthOptions name where credentials come from; secrets are read from
// files or the environment, never from the command line.
type AuthOptions struct {
	SSHKey     string // private key file
	KnownHosts string // known_hosts file; required with SSHKey
	TokenFile  string // file holding an HTTPS token
	TokenEnv   string // environment variable holding an HTTPS token
}

// Auth builds the credentials for remote, or nil when none are needed.
func Auth(remote string, o AuthOptions) (transport.AuthMethod, error) {
	ssh := !strings.Contains(remote, "://") || strings.HasPrefix(remote, "ssh://")
	switch {
	case ssh && IsGitURL(remote):
		if o.SSHKey == "" {
			return nil, nil // ssh-agent is not used: no key, no auth
		}
		if o.KnownHosts == "" {
			return nil, errors.New("--ssh-key needs --known-hosts: pxeops never skips the host key check")
		}
		user := "git"
		if u, err := url.Parse(remote); err == nil && u.User != nil {
			user = u.User.Username()
		} else if at := strings.Index(remote, "@"); at > 0 && !strings.Contains(remote, "://") {
			user = remote[:at]
		}
		pem, err := safefile.ReadFile(o.SSHKey, safefile.MaxKeySize)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key: %w", err)
		}
		keys, err := gitssh.NewPublicKeys(user, pem, "")
		if err != nil {
			return nil, fmt.Errorf("--ssh-key %s: %w", o.SSHKey, err)
		}
		// go-git reads known_hosts by name: a look first, so a named
		// pipe is refused rather than waited on.
		if _, err := safefile.ReadFile(o.KnownHosts, safefile.MaxKeySize); err != nil {
			return nil, fmt.Errorf("--known-hosts: %w", err)
		}
		cb, err := gitssh.NewKnownHostsCallback(o.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("--known-hosts %s: %w", o.KnownHosts, err)
		}
		keys.HostKeyCallback = cb
		return keys, nil
	case isHTTP(remote):
		// Credentials in the URL (user:password, or a token as the user)
		// are accepted, but travel only as auth: the clone stores the URL
		// without them (Redact). A token from a file or the environment
		// wins over the URL's password.
		fromURL := urlAuth(remote)
		token := ""
		if o.TokenFile != "" {
			b, err := safefile.ReadFile(o.TokenFile, safefile.MaxKeySize)
			if err != nil {
				return nil, fmt.Errorf("--token-file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		} else if o.TokenEnv != "" {
			token = os.Getenv(o.TokenEnv)
		}
		if token == "" {
			if fromURL == nil {
				return nil, nil // not a typed nil: go-git tests auth != nil
			}
			return fromURL, nil
		}
		user := "x-access-token" // what GitHub expects; GitLab and Gitea take any name
		if fromURL != nil && fromURL.Username != "" {
			user = fromURL.Username
		}
		return &githttp.BasicAuth{Username: user, Password: token}, nil
	}
	return nil, nil
}
