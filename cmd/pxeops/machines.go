package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/serve/timeline"
)

// Bounds of a running server's answer to `pxeops machines`: 10,000
// machines of a few hundred bytes each fit well within it.
const (
	maxMachinesBody = 32 << 20
	adminTimeout    = 10 * time.Second
)

// machineView is a machine as GET /v1/machines gives it, with the
// durable state's fields this command shows.
type machineView struct {
	timeline.Machine
	State *struct {
		Installed bool      `json:"installed"`
		At        time.Time `json:"at"`
	} `json:"state,omitempty"`
}

// runMachines is `pxeops machines [MAC]`: a running server's boot
// timeline, as a table, or one machine's events.
func runMachines(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("machines", "machines [--admin URL] [--json] [MAC]\n\nShows what a running pxeops saw of each machine (GET /v1/machines on its admin port): last stage, when, group, profile, revision, installed; with MAC, that machine's events.", stderr)
	admin := fset.String("admin", "http://localhost:8080", "the server's admin URL (serve's --admin-addr, else its --http-addr)")
	raw := fset.Bool("json", false, "print the server's JSON as it is")
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	path := "/v1/machines"
	switch fset.NArg() {
	case 0:
	case 1:
		mac, err := render.ParseMAC(fset.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "pxeops machines: MAC %q: %v\n", fset.Arg(0), err)
			return exitUsage
		}
		path += "/" + mac
	default:
		fmt.Fprintln(stderr, "pxeops machines: at most one MAC")
		return exitUsage
	}
	body, code, err := adminRequest(ctx, http.MethodGet, *admin, path)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops machines: --admin %s: %v\n", *admin, err)
		return exitUsage
	}
	if code != http.StatusOK {
		fmt.Fprintf(stderr, "pxeops machines: %s: %d %s\n", path, code, strings.TrimSpace(string(body)))
		return exitInvalid
	}
	if *raw {
		stdout.Write(body)
		return exitOK
	}
	var ms []machineView
	if fset.NArg() == 0 {
		var doc struct{ Machines []machineView }
		err = json.Unmarshal(body, &doc)
		ms = doc.Machines
	} else {
		var m machineView
		err = json.Unmarshal(body, &m)
		ms = []machineView{m}
	}
	if err != nil {
		fmt.Fprintf(stderr, "pxeops machines: %s: not the JSON of a pxeops server: %v\n", path, err)
		return exitInvalid
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MAC\tSTAGE\tAGO\tGROUP\tPROFILE\tREVISION\tINSTALLED")
	for _, m := range ms {
		installed := "-"
		if m.State != nil && m.State.Installed {
			installed = m.State.At.Format(time.RFC3339)
		}
		ago := "-"
		if !m.LastSeen.IsZero() {
			ago = (time.Duration(m.AgoSeconds * float64(time.Second))).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MAC, dash(m.Stage.String(), !m.LastSeen.IsZero()), ago, dash(m.Group, true), dash(m.Profile, true), dash(shortRev(m.Revision), true), installed)
	}
	w.Flush()
	if fset.NArg() == 1 && len(ms[0].Events) > 0 {
		fmt.Fprintln(stdout)
		w = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "AT\tSTAGE\tFILE\tBYTES\tOUTCOME\tREMOTE")
		for _, e := range ms[0].Events {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", e.At.Format(time.RFC3339Nano), e.Stage, dash(e.File, true), e.Bytes, dash(e.Outcome, true), dash(e.Remote.String(), e.Remote.IsValid()))
		}
		w.Flush()
	}
	return exitOK
}

// runMachine is `pxeops machine reset MAC`.
func runMachine(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reset" {
		fmt.Fprintln(stderr, "Usage: pxeops machine reset [--admin URL] MAC")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return exitOK
		}
		return exitUsage
	}
	fset := newFlags("machine reset", "machine reset [--admin URL] MAC\n\nForgets that MAC's installer reported (POST /v1/machines/MAC/reset on the admin port): at its next boot the machine matches its groups without state: installed, i.e. installs again. Without serve --admin-addr the server takes it from loopback only.", stderr)
	admin := fset.String("admin", "http://localhost:8080", "the server's admin URL (serve's --admin-addr, else its --http-addr)")
	if code := parseFlags(fset, args[1:], stderr); code >= 0 {
		return code
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(stderr, "pxeops machine reset: want one MAC")
		return exitUsage
	}
	mac, err := render.ParseMAC(fset.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "pxeops machine reset: MAC %q: %v\n", fset.Arg(0), err)
		return exitUsage
	}
	body, code, err := adminRequest(ctx, http.MethodPost, *admin, "/v1/machines/"+mac+"/reset")
	if err != nil {
		fmt.Fprintf(stderr, "pxeops machine reset: --admin %s: %v\n", *admin, err)
		return exitUsage
	}
	if code != http.StatusOK {
		fmt.Fprintf(stderr, "pxeops machine reset: %d %s\n", code, strings.TrimSpace(string(body)))
		return exitInvalid
	}
	fmt.Fprintf(stdout, "%s: reset; it installs again at its next boot\n", mac)
	return exitOK
}

// adminRequest asks a running server's admin handler, bounded in time
// and size.
func adminRequest(ctx context.Context, method, admin, path string) ([]byte, int, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, errors.New("want http://host:port or https://host:port")
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(admin, "/")+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMachinesBody+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxMachinesBody {
		return nil, 0, fmt.Errorf("answer over %d bytes", maxMachinesBody)
	}
	return body, resp.StatusCode, nil
}

func dash(s string, ok bool) string {
	if s == "" || !ok {
		return "-"
	}
	return s
}

func shortRev(r string) string { return r[:min(len(r), 12)] }
