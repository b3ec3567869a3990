package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

// A tree the extra check refuses is invalid like any other: the last
// good one keeps serving and the attempt says why; warnings pass.
func TestCheckRefusesTree(t *testing.T) {
	r := New(render.Options{}, nil, nil)
	r.SetCheck(func(snap *render.Snapshot) schema.Diagnostics {
		sev := schema.Warning
		if strings.Contains(snap.Revision, "secret") {
			sev = schema.Error
		}
		return schema.Diagnostics{{Pos: schema.Pos{File: "groups/g.yaml"}, Severity: sev, Message: "its profile uses a secret"}}
	})
	if got := r.Apply(context.Background(), source.Revision{ID: "good", FS: tree("good")}); got != ResultServed {
		t.Fatalf("Apply(good) = %s", got)
	}
	if got := r.Apply(context.Background(), source.Revision{ID: "secret", FS: tree("secret")}); got != ResultInvalid {
		t.Fatalf("Apply(secret) = %s", got)
	}
	st := r.Status()
	if r.Snapshot().Revision != "good" || st.LastAttempt.Errors != 1 || st.LastAttempt.Findings[0].File != "groups/g.yaml" {
		t.Errorf("after a refused tree: serving %s, attempt %+v", r.Snapshot().Revision, st.LastAttempt)
	}
}
