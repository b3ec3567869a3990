package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
)

func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("render", "render --mac MAC [--uuid U --hostname H --serial S --arch A --label k=v] [DIR]\n\nShows which group a machine gets and why, and every answer it would be served: the iPXE script (or, for loader grub, the GRUB config), the config, /metadata and the Pixiecore API's body.", stderr)
	q := url.Values{}
	for _, key := range []string{"mac", "uuid", "hostname", "serial", "arch"} {
		fset.Func(key, "the machine's "+key, func(v string) error { q.Set(key, v); return nil })
	}
	var labels multi
	fset.Var(&labels, "label", "a label as key=value (repeatable)")
	serverURL := fset.String("server-url", "http://localhost:8080", "base URL machines reach pxeops at")
	httpsURL := fset.String("https-url", "", "serve's --https-url, for {{ .ConfigServerURL }} (default: --server-url)")
	var g gitFlags
	g.register(fset)
	var sf secretsFlags
	sf.register(fset, true)
	show := fset.Bool("show-secrets", false, "print the secrets' values in the config; without it each is masked as <secret:name>")
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	secrets, err := sf.load()
	if err != nil {
		fmt.Fprintf(stderr, "pxeops render: %v\n", err)
		return exitUsage
	}
	if *show && sf.dir == "" {
		fmt.Fprintln(stderr, "pxeops render: --show-secrets needs --secrets-dir: the values come from there")
		return exitUsage
	}
	if !*show {
		secrets = secrets.Masked()
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			fmt.Fprintf(stderr, "pxeops render: --label %q: write key=value\n", l)
			return exitUsage
		}
		q.Add(k, v)
	}
	m, err := render.ParseMachine(q)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops render: --%v\n", err)
		return exitUsage
	}
	tree, dir, cleanup, code := openTree(ctx, fset, &g, stderr)
	if code >= 0 {
		return code
	}
	defer cleanup()
	snap, diags := render.Load(ctx, tree, render.Options{ServerURL: *serverURL, ConfigServerURL: *httpsURL, Secrets: secrets})
	if err := context.Cause(ctx); err != nil {
		fmt.Fprintf(stderr, "pxeops render: interrupted: %v\n", err)
		return exitInvalid
	}
	if snap == nil {
		for _, d := range diags {
			d.File = dir + "/" + d.File
			fmt.Fprintln(stderr, d)
		}
		fmt.Fprintf(stderr, "pxeops render: %s is invalid; `pxeops check` lists the same errors\n", dir)
		return exitInvalid
	}
	return explain(stdout, snap, &m)
}

func explain(w io.Writer, snap *render.Snapshot, m *render.Machine) int {
	fmt.Fprintf(w, "machine:  %s\n", m)
	g := snap.Lookup(m)
	for _, c := range snap.Explain(m) {
		switch {
		case c.Group == g:
			fmt.Fprintf(w, "matched:  %s (%s), %s\n", c.Group.ID, c.Group.Source.File(), describe(c.Group))
		case c.Matched:
			fmt.Fprintf(w, "also matches: %s, %s; loses on precedence\n", c.Group.ID, describe(c.Group))
		default:
			fmt.Fprintf(w, "considered: %s, %s; %s differs\n", c.Group.ID, describe(c.Group), c.Mismatch)
		}
	}
	if g == nil {
		fmt.Fprintln(w, "no group matches and there is no default group: this machine is not served")
		return exitInvalid
	}
	p := g.Profile
	fmt.Fprintf(w, "profile:  %s (%s)", p.ID, p.Source.File())
	if d := p.Source.Description; d != "" {
		fmt.Fprintf(w, ": %s", d)
	}
	fmt.Fprintln(w)
	if im := p.Source.ResolvedImage(); im != nil {
		fmt.Fprintf(w, "image:    %s\n", imageSide(p, m.MAC))
	}
	// A GRUB machine never runs the iPXE script: it gets the GRUB config.
	if g.Loader() == render.LoaderGRUB {
		// The name GRUB asks pxeops' TFTP for (serve/bootfiles).
		name := "grub/" + m.MAC + "-" + cmp.Or(m.Arch, "<cpu>") + ".cfg"
		fmt.Fprintf(w, "first:    shim → GRUB (UEFI; a BIOS machine gets iPXE)\n\n--- GRUB config (TFTP %s, /grub) ---\n", name)
		if err := snap.WriteGRUB(w, g, m, nil); err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
			return exitInvalid
		}
	} else {
		fmt.Fprintf(w, "first:    iPXE\n\n--- iPXE script (/ipxe) ---\n")
		if err := snap.WriteScript(w, g, m); err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
			return exitInvalid
		}
	}
	fmt.Fprintf(w, "\n--- config (/config, %s) ---\n", p.Source.ConfigType())
	err := snap.WriteConfig(w, g, m)
	switch {
	case errors.Is(err, render.ErrNoConfig):
		fmt.Fprintln(w, "(none: the profile has no config)")
	case err != nil:
		fmt.Fprintf(w, "error: %v\n", err)
		return exitInvalid
	default:
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n--- metadata (/metadata) ---\n")
	var md bytes.Buffer
	if err := snap.WriteMetadata(&md, g, m, render.MachineQuery(m)); err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return exitInvalid
	}
	if md.Len() == 0 {
		md.WriteString("(empty)\n")
	}
	w.Write(md.Bytes())
	return explainPixiecore(w, snap, g, m)
}

// explainPixiecore shows the Pixiecore API's answer, which asks by MAC
// alone: a group that needs more of the machine does not match there.
func explainPixiecore(w io.Writer, snap *render.Snapshot, g *render.Group, m *render.Machine) int {
	if m.MAC == "" {
		fmt.Fprintf(w, "\n--- Pixiecore API (/pixiecore/v1/boot/MAC) ---\n(none: it asks by MAC; give --mac)\n")
		return exitOK
	}
	fmt.Fprintf(w, "\n--- Pixiecore API (/pixiecore/v1/boot/%s) ---\n", m.MAC)
	pm := render.Machine{MAC: m.MAC}
	pg := snap.Lookup(&pm)
	switch {
	case pg == nil:
		fmt.Fprintf(w, "(none: no group matches mac=%s alone and there is no default group)\n", m.MAC)
		return exitOK
	case pg != g:
		fmt.Fprintf(w, "(by MAC alone: %s, profile %s)\n", pg.ID, pg.Profile.ID)
	}
	if err := snap.WritePixiecore(w, pg, &pm, nil); err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

// imageSide says which version of profile p's image machine mac boots
// and, during a rollout, why: its bucket against the share.
func imageSide(p *render.Profile, mac string) string {
	f := p.Boot(mac)
	r := p.Rollout()
	if r == nil {
		return p.Source.Image + " " + f.Version
	}
	got := f.Version + " (pinned)"
	if f.OnRollout {
		got = f.Version + " (the rollout)"
	}
	head := fmt.Sprintf("%s: rollout %s at %s beside %s: ", r.Image, r.Version, r.Share, r.Pinned)
	switch under := int(r.Share); {
	case r.Share >= schema.FullShare:
		return head + "every machine → " + got
	case mac == "":
		return head + "no --mac, so no bucket → " + got
	case f.OnRollout:
		return head + fmt.Sprintf("this machine's bucket %d of %d is under %d → %s", r.Bucket(mac), render.Buckets, under, got)
	default:
		return head + fmt.Sprintf("this machine's bucket %d of %d is not under %d → %s", r.Bucket(mac), render.Buckets, under, got)
	}
}

func describe(g *render.Group) string {
	if len(g.Keys) == 0 {
		return "the default group (no selector)"
	}
	var parts []string
	for _, k := range g.Keys {
		parts = append(parts, k+"="+g.Source.Selector[k])
	}
	return fmt.Sprintf("selector %s (%s)", strings.Join(parts, " "), plural(len(g.Keys), "key"))
}
