package discover

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/source/propose"
)

// PassOptions are a pass's facts from outside the tree.
type PassOptions struct {
	Options
	// Branch overrides pxeops.yaml's discovery.branch (a command's flag);
	// "": the setting.
	Branch string
	Author object.Signature // its When: the caller's clock
	Push   bool
}

// Report is what a pass did.
type Report struct {
	Branch  string
	Results []Result
	// The commit on the branch (Changed: made by this pass) when there
	// were files to propose; "" when there were none.
	Commit          string
	Changed, Pushed bool
}

// Pass runs one discovery pass on repo: MakePlan over its base and the
// branch's tip, then Propose. With nothing to propose nothing is touched:
// the branch stays as it was.
func Pass(ctx context.Context, repo *propose.Repo, machines []Machine, o PassOptions) (*Report, error) {
	base, err := repo.Tree()
	if err != nil {
		return nil, err
	}
	b, err := LoadBase(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("%.12s: %w", repo.Base(), err)
	}
	rep := &Report{Branch: o.Branch}
	if rep.Branch == "" {
		rep.Branch = b.Settings().Branch
	}
	tip, err := repo.BranchTree(rep.Branch)
	if err != nil {
		return nil, err
	}
	plan := b.Plan(tip, machines, o.Options)
	rep.Results = plan.Results
	if len(plan.Files) == 0 {
		return rep, nil
	}
	out, err := repo.Propose(ctx, propose.Proposal{
		Branch: rep.Branch, Files: plan.Files, Message: plan.Message,
		Author: o.Author, Push: o.Push,
	})
	rep.Commit, rep.Changed, rep.Pushed = out.Commit, out.Changed, out.Pushed
	return rep, err
}
