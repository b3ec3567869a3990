package omaha_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/omahatest"
	"github.com/pxeops/pxeops/omaha"
)

// Floor releases are for disk installs; a PXE image goes straight to the
// target, asking again from the highest floor while answers hold floors
// only.
func TestCheckSkipsFloorReleases(t *testing.T) {
	rel := omahatest.New(t)
	rel.SetLatest("4.0.0")
	rel.SetFloors("1.5.0", "2.0.0", "3.0.0")
	c := &omaha.Client{}
	offer, err := c.Check(context.Background(), omaha.Query{Server: rel.ServerURL(), Channel: "stable", Arch: "amd64", Version: "1.0.0"})
	if err != nil || offer.Version != "4.0.0" {
		t.Fatalf("offer %+v, %v", offer, err)
	}
	// 1.0.0 gets floor 1.5.0 only; 1.5.0 gets 2.0.0 only; 2.0.0 gets 3.0.0 and the target.
	asked := rel.Asked()
	if len(asked) != 3 || asked[0] != "1.0.0" || asked[1] != "1.5.0" || asked[2] != "2.0.0" {
		t.Errorf("asked as %v", asked)
	}

	rel.SetLatest("")
	if offer, err := c.Check(context.Background(), omaha.Query{Server: rel.ServerURL(), Channel: "stable", Arch: "amd64", Version: "4.0.0"}); err != nil || offer.Version != "" {
		t.Fatalf("noupdate: %+v, %v", offer, err)
	}
}

// A service whose floors do not advance is an error, not a loop.
func TestCheckRefusesFloorsThatDoNotAdvance(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := omaha.ParseRequest(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		floor := omaha.Manifest{Version: req.Apps[0].Version, IsFloor: "true"}
		w.Write(omaha.Marshal(omaha.Response{Protocol: "3.0", Apps: []omaha.ResponseApp{{AppID: omaha.AppID, Status: "ok",
			UpdateCheck: &omaha.UpdateCheck{Status: "ok", Manifests: []omaha.Manifest{floor}}}}}))
	}))
	defer srv.Close()
	_, err := (&omaha.Client{}).Check(context.Background(), omaha.Query{Server: srv.URL, Channel: "stable", Arch: "amd64", Version: "1.0.0"})
	if err == nil || !strings.Contains(err.Error(), "does not advance") {
		t.Fatalf("err %v", err)
	}
}
