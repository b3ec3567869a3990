// Package pixiecoreapi is the client side of Pixiecore's API mode: for a
// machine's MAC it asks GET <api>/v1/boot/<mac> and turns the answer
// (kernel, initrd, cmdline, message) into what pxeops boots, or into "do
// not boot this machine". Every request is bounded: a timeout, a cap on
// the body, one request at a time per MAC, answers cached briefly.
package pixiecoreapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/template"
	tparse "text/template/parse"
	"time"
)

// Limits of one answer.
const (
	MaxBody    = 64 << 10 // the JSON document
	MaxCmdline = 4 << 10  // the command line after its template ran
	MaxInitrds = 32
)

// Answer is what the API says for one machine.
type Answer struct {
	// Boot is false when the API said not to boot the machine (any
	// status but 200, or a malformed 200, as Pixiecore treats them).
	Boot    bool
	Kernel  string   // absolute http(s) URL
	Initrds []string // absolute http(s) URLs
	Args    []string // the command line, split at spaces
	Message string
	// Why says why Boot is false.
	Why string
}

// Client asks one API.
type Client struct {
	base    *url.URL // the API's prefix, ending in "/"
	http    *http.Client
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]*entry
}

type entry struct {
	done    chan struct{} // closed when ans is set
	ans     Answer
	expires time.Time
}

// Options bound a Client; zero values take the defaults.
type Options struct {
	Timeout time.Duration // per request; default 2 s, short enough for DHCP's retries
	TTL     time.Duration // how long an answer is reused; default 10 s
	HTTP    *http.Client
}

// maxCache bounds the cache: past it, expired entries go first, then all.
const maxCache = 4096

// New is a client of the API at prefix (http or https).
func New(prefix string, o Options) (*Client, error) {
	u, err := url.Parse(prefix)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("want an http(s) URL, e.g. http://localhost:9000/api")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Client{base: u, http: o.HTTP, timeout: o.Timeout, ttl: o.TTL, now: time.Now, cache: map[string]*entry{}}, nil
}

// Ask returns the API's answer for mac (canonical, lower case, colons),
// from the cache while it is fresh. Concurrent asks for one MAC share one
// request. A request that fails (timeout, refused connection) is an
// answer too: do not boot, for now.
func (c *Client) Ask(ctx context.Context, mac string) Answer {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return Answer{Why: "not a MAC address"}
	}
	mac = hw.String()
	c.mu.Lock()
	e := c.cache[mac]
	if e != nil {
		select {
		case <-e.done:
			if c.now().Before(e.expires) {
				c.mu.Unlock()
				return e.ans
			}
			e = nil
		default: // in flight: wait for it
		}
	}
	if e == nil {
		if len(c.cache) >= maxCache {
			c.evict()
		}
		e = &entry{done: make(chan struct{})}
		c.cache[mac] = e
		c.mu.Unlock()
		ans := c.fetch(ctx, mac)
		c.mu.Lock()
		e.ans, e.expires = ans, c.now().Add(c.ttl)
		close(e.done)
		c.mu.Unlock()
		return ans
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.ans
	case <-ctx.Done():
		return Answer{Why: ctx.Err().Error()}
	}
}

// evict drops expired answers, or all when none has expired; c.mu held.
func (c *Client) evict() {
	now := c.now()
	for k, e := range c.cache {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				delete(c.cache, k)
			}
		default:
		}
	}
	if len(c.cache) >= maxCache {
		for k, e := range c.cache {
			select {
			case <-e.done:
				delete(c.cache, k)
			default:
			}
		}
	}
}

func (c *Client) fetch(ctx context.Context, mac string) Answer {
	// Others may be waiting for this answer: the first asker's leaving
	// must not become theirs.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	u := c.base.JoinPath("v1", "boot", mac)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Answer{Why: err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{Why: "API: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Answer{Why: fmt.Sprintf("API answered %s", resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return Answer{Why: "API: reading the answer: " + err.Error()}
	}
	if len(body) > MaxBody {
		return Answer{Why: fmt.Sprintf("API: answer over %d bytes", MaxBody)}
	}
	ans, err := Parse(body, c.base)
	if err != nil {
		return Answer{Why: "API: malformed answer: " + err.Error()}
	}
	return ans
}

// doc is the API's JSON document.
type doc struct {
	Kernel  string          `json:"kernel"`
	Initrd  []string        `json:"initrd"`
	Cmdline json.RawMessage `json:"cmdline"`
	Message string          `json:"message"`
}

// Parse reads a 200 answer's body. URLs may be relative to base, the
// API's prefix. The command line is a string, run as Pixiecore runs it
// through text/template with its URL function (which here makes the URL
// absolute: pxeops does not proxy), or an object of key: value (a
// string, true, or {"url": URL}), as Pixiecore's first API had it.
func Parse(body []byte, base *url.URL) (Answer, error) {
	var d doc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&d); err != nil {
		return Answer{}, err
	}
	if dec.More() {
		return Answer{}, errors.New("more than one JSON value")
	}
	ans := Answer{Boot: true, Message: d.Message}
	var err error
	if d.Kernel == "" {
		return Answer{}, errors.New("no kernel")
	}
	if ans.Kernel, err = absolute(base, d.Kernel); err != nil {
		return Answer{}, fmt.Errorf("kernel: %w", err)
	}
	if len(d.Initrd) > MaxInitrds {
		return Answer{}, fmt.Errorf("more than %d initrds", MaxInitrds)
	}
	for i, s := range d.Initrd {
		u, err := absolute(base, s)
		if err != nil {
			return Answer{}, fmt.Errorf("initrd[%d]: %w", i, err)
		}
		ans.Initrds = append(ans.Initrds, u)
	}
	cmdline, err := commandLine(d.Cmdline, base)
	if err != nil {
		return Answer{}, fmt.Errorf("cmdline: %w", err)
	}
	if strings.ContainsAny(cmdline, "\x00") {
		return Answer{}, errors.New("cmdline: contains NUL")
	}
	ans.Args = strings.Fields(cmdline)
	if strings.ContainsFunc(ans.Message, func(r rune) bool { return r < ' ' && r != '\t' }) {
		ans.Message = strings.Map(func(r rune) rune {
			if r < ' ' && r != '\t' {
				return ' '
			}
			return r
		}, ans.Message)
	}
	return ans, nil
}

func commandLine(raw json.RawMessage, base *url.URL) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return runTemplate(s, base)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", errors.New("want a string or an object")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == "" || strings.ContainsAny(k, " =\t\n") {
			return "", fmt.Errorf("key %q: no spaces or =", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // JSON objects have no order; the command line does
	var args []string
	for _, k := range keys {
		v := bytes.TrimSpace(m[k])
		var s string
		var u struct {
			URL string `json:"url"`
		}
		switch {
		case string(v) == "true":
			args = append(args, k)
		case string(v) == "false" || string(v) == "null":
		case json.Unmarshal(v, &s) == nil:
			args = append(args, k+"="+s)
		case json.Unmarshal(v, &u) == nil && u.URL != "":
			abs, err := absolute(base, u.URL)
			if err != nil {
				return "", fmt.Errorf("%s: %w", k, err)
			}
			args = append(args, k+"="+abs)
		default:
			return "", fmt.Errorf("%s: want a string, true or {\"url\": URL}", k)
		}
	}
	s := strings.Join(args, " ")
	if len(s) > MaxCmdline {
		return "", fmt.Errorf("over %d bytes", MaxCmdline)
	}
	return s, nil
}

// runTemplate runs Pixiecore's command-line template. Only text and the
// actions {{ URL "..." }} and {{ "literal" }} are allowed: the API is
// outside input, and a template with define, range or recursion could
// run for ever.
func runTemplate(s string, base *url.URL) (string, error) {
	t, err := template.New("cmdline").Funcs(template.FuncMap{"URL": func(string) string { return "" }}).Parse(s)
	if err != nil {
		return "", err
	}
	if len(t.Templates()) > 1 {
		return "", errors.New("template: only URL and string actions")
	}
	var b strings.Builder
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *tparse.TextNode:
			b.Write(n.Text)
		case *tparse.ActionNode:
			v, err := action(n, base)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		default:
			return "", fmt.Errorf("template: %s: only URL and string actions", n)
		}
		if b.Len() > MaxCmdline {
			return "", fmt.Errorf("over %d bytes", MaxCmdline)
		}
	}
	return b.String(), nil
}

func action(n *tparse.ActionNode, base *url.URL) (string, error) {
	bad := fmt.Errorf("template: %s: only {{ URL \"...\" }} and {{ \"...\" }}", n)
	if len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 {
		return "", bad
	}
	args := n.Pipe.Cmds[0].Args
	switch {
	case len(args) == 1:
		if s, ok := args[0].(*tparse.StringNode); ok {
			return s.Text, nil
		}
	case len(args) == 2:
		id, ok := args[0].(*tparse.IdentifierNode)
		s, ok2 := args[1].(*tparse.StringNode)
		if ok && ok2 && id.Ident == "URL" {
			return absolute(base, s.Text)
		}
	}
	return "", bad
}

// absolute resolves s against base and accepts http(s) URLs only.
func absolute(base *url.URL, s string) (string, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%q: no spaces or control characters", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	u = base.ResolveReference(u)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q: want an http(s) URL", s)
	}
	return u.String(), nil
}
