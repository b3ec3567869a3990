package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/reconcile/discover"
)

// runDiscover is `pxeops discover`: one discovery pass, the PXE clients
// a running server saw unmatched (or a file of them) proposed on a branch.
func runDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("discover", "discover --repo DIR|GIT-URL [--admin URL | --machines FILE] [--push] [flags]\n\n"+
		"Proposes the PXE clients no group matches as group files, one each, on a branch of\n"+
		"their own (pxeops.yaml's discovery.branch, default pxeops/discovered), never the\n"+
		"served one; booting discovery.profile, or disabled without one. A second pass with\n"+
		"the same machines changes nothing. Exit 0 done, 1 failed, 2 usage.", stderr)
	repoFlag := fset.String("repo", "", "config repository: a local git repository, or a git URL (required)")
	admin := fset.String("admin", "http://localhost:8080", "the running server whose unmatched clients are proposed (GET /v1/discovered on its admin port)")
	file := fset.String("machines", "", "a file in GET /v1/discovered's JSON shape, instead of --admin")
	branch := fset.String("branch", "", "branch to propose on (default: pxeops.yaml's discovery.branch)")
	push := fset.Bool("push", false, "push the branch to the repository's origin (a git URL: to it)")
	author := fset.String("author", "pxeops <pxeops@localhost>", "author and committer of the proposal")
	var g gitFlags
	g.registerPropose(fset, "the proposal")
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pxeops discover: "+format+"\n", a...)
		return exitUsage
	}
	if fset.NArg() > 0 {
		return usage("unexpected argument %q; the repository is given with --repo", fset.Arg(0))
	}
	if *repoFlag == "" {
		return usage("--repo is required: a local git repository or a git URL")
	}
	who, err := mail.ParseAddress(*author)
	if err != nil {
		return usage("--author %q: want \"Name <email>\": %v", *author, err)
	}
	var list []byte
	if *file != "" {
		if list, err = safefile.ReadFile(*file, discover.MaxBody); err != nil {
			return usage("--machines: %v", err)
		}
	} else {
		body, code, err := adminRequest(ctx, http.MethodGet, *admin, "/v1/discovered")
		if err != nil {
			return usage("--admin %s: %v", *admin, err)
		}
		if code != http.StatusOK {
			fmt.Fprintf(stderr, "pxeops discover: --admin %s: /v1/discovered: %d %s\n", *admin, code, bytes.TrimSpace(body))
			return exitInvalid
		}
		list = body
	}
	machines, err := discover.Decode(bytes.NewReader(list))
	if err != nil {
		what := "--admin " + *admin
		if *file != "" {
			what = "--machines " + *file
		}
		fmt.Fprintf(stderr, "pxeops discover: %s: %v\n", what, err)
		return exitInvalid
	}
	repo, err := g.openUpdateRepo(ctx, *repoFlag, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pxeops discover: %v\n", err)
		return exitInvalid
	}
	rep, err := discover.Pass(ctx, repo, machines, discover.PassOptions{
		Branch: *branch, Push: *push,
		Author: object.Signature{Name: who.Name, Email: who.Address, When: time.Now()},
	})
	if err != nil {
		fmt.Fprintf(stderr, "pxeops discover: %v\n", err)
		return exitInvalid
	}
	for _, r := range rep.Results {
		switch {
		case r.Err != nil:
			fmt.Fprintf(stdout, "%s: %s: %v\n", dash(r.MAC, true), r.State, r.Err)
		case r.Group != "":
			fmt.Fprintf(stdout, "%s: %s (group %s)\n", r.MAC, r.State, r.Group)
		default:
			fmt.Fprintf(stdout, "%s: %s %s\n", r.MAC, r.State, r.File)
		}
	}
	switch {
	case rep.Commit == "":
		fmt.Fprintf(stdout, "nothing to propose on %s\n", rep.Branch)
	case !rep.Changed:
		fmt.Fprintf(stdout, "branch %s already holds these (commit %.12s)\n", rep.Branch, rep.Commit)
	default:
		pushed := "not pushed (--push not given)"
		if rep.Pushed {
			pushed = "pushed"
		}
		fmt.Fprintf(stdout, "proposed on branch %s (commit %.12s, %s)\n", rep.Branch, rep.Commit, pushed)
	}
	return exitOK
}
