package omaha

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client asks an Omaha update service what a machine would be offered.
type Client struct {
	HTTP *http.Client
	// UserAgent names pxeops to the update service.
	UserAgent string
}

// Query describes the machine the client poses as.
type Query struct {
	Server    string // the update service's URL
	Channel   string // stable, beta, alpha, ...
	Arch      string // amd64 or arm64
	Version   string // the version the machine runs
	MachineID string // stable per image, so the service can count us once
}

// Offer is the service's answer: Version is empty for noupdate.
type Offer struct {
	Version string
}

// Board is the release board of an arch, as release servers name it.
func Board(arch string) string { return arch + "-usr" }

// Check poses as a machine of q and returns what the service offers it.
func (c *Client) Check(ctx context.Context, q Query) (Offer, error) {
	body := Marshal(newUpdateRequest(q))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.Server, bytes.NewReader(body))
	if err != nil {
		return Offer{}, fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.do(req)
	if err != nil {
		return Offer{}, fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Offer{}, fmt.Errorf("omaha server %s: %s", q.Server, resp.Status)
	}
	doc, err := ParseResponse(resp.Body)
	if err != nil {
		return Offer{}, fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	return offerOf(doc)
}

func offerOf(doc *Response) (Offer, error) {
	app := doc.App(AppID)
	switch {
	case app == nil:
		return Offer{}, fmt.Errorf("the response has no <app> for %s", AppID)
	case app.Status != "ok":
		return Offer{}, fmt.Errorf("the service refused the app: status %q", app.Status)
	case app.UpdateCheck == nil:
		return Offer{}, fmt.Errorf("the response has no <updatecheck>")
	}
	switch uc := app.UpdateCheck; uc.Status {
	case "noupdate":
		return Offer{}, nil
	case "ok":
		if uc.Manifest == nil || !validVersion(uc.Manifest.Version) {
			return Offer{}, fmt.Errorf("update offered without a usable manifest version")
		}
		return Offer{Version: uc.Manifest.Version}, nil
	default:
		return Offer{}, fmt.Errorf("updatecheck status %q", uc.Status)
	}
}

// newUpdateRequest is the request update_engine would send for q, with
// multi_manifest_ok so that Flatcar's server does not hold back releases
// behind floor versions.
func newUpdateRequest(q Query) *Request {
	cpu, arch := "x86_64", "x64"
	if q.Arch == "arm64" {
		cpu, arch = "aarch64", "arm64"
	}
	return &Request{
		Protocol: "3.0", Version: "update_engine-0.4.10", UpdaterVersion: "update_engine-0.4.10",
		InstallSource: "scheduler", IsMachine: "1",
		OS: RequestOS{Version: "Chateau", Platform: "CoreOS", SP: q.Version + "_" + cpu, Arch: arch},
		Apps: []RequestApp{{
			AppID: AppID, Version: q.Version, Track: q.Channel, Board: Board(q.Arch),
			BootID: "{" + rand.Text() + "}", MachineID: q.MachineID, OEM: "pxe",
			MultiManifestOK: "true", DeltaOkay: "false",
			UpdateCheck: &UpdateCheck{},
		}},
	}
}

// VersionTxt reads a channel's current/version.txt and returns its
// FLATCAR_VERSION (or COREOS_VERSION).
func (c *Client) VersionTxt(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, MaxBody))
	for sc.Scan() {
		for _, key := range []string{"FLATCAR_VERSION=", "COREOS_VERSION="} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key); ok {
				if !validVersion(v) {
					return "", fmt.Errorf("%s: invalid version %q", url, v)
				}
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no FLATCAR_VERSION= line", url)
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}
