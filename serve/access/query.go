package access

import (
	"bytes"
	"errors"
	"strings"
)

// ConfigPaths are the endpoints the booted OS fetches; their URLs in a
// checked script get the token.
var ConfigPaths = []string{"/config", "/ignition", "/cloud", "/generic", "/metadata"}

// SplitToken takes the token parameter out of a raw query, so the rest
// parses as the machine (where pxeops.token would be a label). A token
// given twice, or without a value, is an error; its value is returned
// as given (a token needs no escapes: one that has them fails Verify).
func SplitToken(raw string) (token, rest string, err error) {
	if !strings.Contains(raw, TokenParam) {
		return "", raw, nil
	}
	var kept []string
	found := false
	for part := range strings.SplitSeq(raw, "&") {
		key, value, _ := strings.Cut(part, "=")
		if key != TokenParam {
			kept = append(kept, part)
			continue
		}
		switch {
		case found:
			return "", "", errors.New(TokenParam + ": given twice; give it once")
		case value == "":
			return "", "", errors.New(TokenParam + ": empty")
		}
		token, found = value, true
	}
	return token, strings.Join(kept, "&"), nil
}

// The completion report's path around the MAC (schema.InstalledPath).
const installedPrefix, installedSuffix = "/v1/machines/", "/installed"

// configPathAt1 reports whether s starts with path p followed by the end
// of the path.
func configPathAt1(s []byte, p string) bool {
	rest, ok := bytes.CutPrefix(s, []byte(p))
	return ok && (len(rest) == 0 || rest[0] == '?' || rest[0] == '#' || strings.IndexByte(urlEnd, rest[0]) >= 0)
}

// urlEnd are the bytes that end a URL in a script or a kernel command line.
const urlEnd = " \t\r\n\"'"

// AddToken returns script with token added to every URL that points at
// one of ConfigPaths under one of bases (the server's URLs, without a
// trailing slash): "?pxeops.token=..." or "&pxeops.token=...", before
// any fragment. URLs that carry a token already, and everything else,
// are left alone. The token is base64url: it needs no escaping in a
// URL, an iPXE script or a kernel command line.
func AddToken(script []byte, token string, bases ...string) []byte {
	var out []byte
	last := 0 // script[:last] is in out
	for i := 0; i < len(script); {
		start, base := -1, ""
		for _, b := range bases {
			if b == "" {
				continue
			}
			if j := bytes.Index(script[i:], []byte(b+"/")); j >= 0 && (start < 0 || i+j < start) {
				start, base = i+j, b
			}
		}
		if start < 0 {
			break
		}
		i = start + len(base) + 1
		if !configPathAt(script[i-1:]) {
			continue
		}
		end := start + len(base)
		if k := bytes.IndexAny(script[end:], urlEnd); k >= 0 {
			end += k
		} else {
			end = len(script)
		}
		i = end
		url := script[start:end]
		at := len(url)
		if k := bytes.IndexByte(url, '#'); k >= 0 {
			at = k
		}
		if bytes.Contains(url[:at], []byte(TokenParam+"=")) {
			continue
		}
		sep := "&"
		switch q := bytes.IndexByte(url[:at], '?'); {
		case q < 0:
			sep = "?"
		case q == at-1 || url[at-1] == '&':
			sep = ""
		}
		out = append(out, script[last:start+at]...)
		out = append(out, sep+TokenParam+"="+token...)
		last = start + at
	}
	if out == nil {
		return script
	}
	return append(out, script[last:]...)
}

// configPathAt reports whether s (from the slash after the base on)
// starts with one of ConfigPaths, or a machine's completion report
// (/v1/machines/<mac>/installed: decided as its config is), followed by
// the end of the path.
func configPathAt(s []byte) bool {
	if rest, ok := bytes.CutPrefix(s, []byte(installedPrefix)); ok {
		if i := bytes.IndexByte(rest, '/'); i > 0 && bytes.IndexAny(rest[:i], urlEnd+"?#") < 0 {
			return configPathAt1(rest[i:], installedSuffix)
		}
	}
	for _, p := range ConfigPaths {
		if rest, ok := bytes.CutPrefix(s, []byte(p)); ok {
			return len(rest) == 0 || rest[0] == '?' || rest[0] == '#' || strings.IndexByte(urlEnd, rest[0]) >= 0
		}
	}
	return false
}
