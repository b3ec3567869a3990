package omaha

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
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
	Board     string // Flatcar's name for Arch: amd64-usr, arm64-usr
	Version   string // the version the machine runs
	MachineID string // stable per image, so the service can count us once
}

// Offer is the service's answer: Version is empty for noupdate.
type Offer struct {
	Version string
}

// maxFloorHops bounds how often Check asks again from a floor release.
const maxFloorHops = 16

// Check poses as a machine of q and returns what the service offers it.
// PXE-booted machines are stateless, so floor releases (which disk
// installs must pass through) are skipped: when an answer holds floors
// only, Check asks again as a machine on the highest floor until the
// target comes.
func (c *Client) Check(ctx context.Context, q Query) (Offer, error) {
	asked := q.Version
	for range maxFloorHops {
		target, floor, err := c.check(ctx, q, asked)
		switch {
		case err != nil:
			return Offer{}, err
		case target != "":
			return Offer{Version: target}, nil
		case floor == "" && asked != q.Version:
			return Offer{Version: asked}, nil // the last floor is the newest release
		case floor == "":
			return Offer{}, nil
		case CompareVersions(floor, asked) <= 0:
			return Offer{}, fmt.Errorf("omaha server %s: floor %s does not advance past %s", q.Server, floor, asked)
		}
		asked = floor
	}
	return Offer{}, fmt.Errorf("omaha server %s: more than %d floor releases in a row", q.Server, maxFloorHops)
}

func (c *Client) check(ctx context.Context, q Query, version string) (target, floor string, err error) {
	q.Version = version
	body := Marshal(newUpdateRequest(q))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.Server, bytes.NewReader(body))
	if err != nil {
		return "", "", fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.do(req)
	if err != nil {
		return "", "", fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("omaha server %s: %s", q.Server, resp.Status)
	}
	doc, err := ParseResponse(resp.Body)
	if err != nil {
		return "", "", fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	app := doc.App(AppID)
	switch {
	case app == nil:
		err = fmt.Errorf("the response has no <app> for %s", AppID)
	case app.Status != "ok":
		err = fmt.Errorf("the service refused the app: status %q", app.Status)
	case app.UpdateCheck == nil:
		err = errors.New("the response has no <updatecheck>")
	default:
		target, floor, err = app.UpdateCheck.Offered()
	}
	if err != nil {
		return "", "", fmt.Errorf("omaha server %s: %w", q.Server, err)
	}
	return target, floor, nil
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
			AppID: AppID, Version: q.Version, Track: q.Channel, Board: q.Board,
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
	return cmp.Or(c.HTTP, http.DefaultClient).Do(req)
}
