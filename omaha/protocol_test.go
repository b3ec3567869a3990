package omaha

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseProtocolFixtures(t *testing.T) {
	data, err := os.ReadFile("testdata/coreos-response.xml")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ParseResponse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	target, floor, err := resp.App(AppID).UpdateCheck.Offered()
	if err != nil || target != "410.0.0" || floor != "" {
		t.Fatalf("offered %q %q, %v", target, floor, err)
	}
	if p := resp.App(AppID).UpdateCheck.Manifests[0].Packages[0]; p.Name != "update.gz" || p.Size != "111882133" {
		t.Errorf("package %+v", p)
	}

	data, err = os.ReadFile("testdata/flatcar-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	app := req.Apps[0]
	if app.Version != "3975.2.0" || app.Track != "stable" || app.Board != "amd64-usr" || app.UpdateCheck == nil || app.Ping == nil ||
		len(app.Events) != 1 || app.Events[0].Type != EventUpdateComplete || app.Events[0].PreviousVersion != "3815.2.5" {
		t.Errorf("app %+v", app)
	}
}

// With multi_manifest_ok the answer lists floors, then the target.
func TestOfferedPicksTheTargetOverFloors(t *testing.T) {
	data, err := os.ReadFile("testdata/flatcar-floors-response.xml")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ParseResponse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	uc := resp.App(AppID).UpdateCheck
	if target, floor, err := uc.Offered(); err != nil || target != "4081.2.0" || floor != "" {
		t.Fatalf("offered %q %q %v", target, floor, err)
	}
	if m := uc.Manifests[0]; m.IsFloor != "true" || m.FloorReason != "partition layout change" {
		t.Errorf("floor manifest %+v", m)
	}
	uc.Manifests = uc.Manifests[:1] // floors only: ask again from the floor
	if target, floor, err := uc.Offered(); err != nil || target != "" || floor != "3510.2.8" {
		t.Fatalf("floors only: %q %q %v", target, floor, err)
	}
	uc.Manifests[0].Version = "../../etc"
	if _, _, err := uc.Offered(); err == nil {
		t.Fatal("a version that is not one was accepted")
	}
}

func TestParseRejects(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"empty", "", "no XML element"},
		{"not xml", "hello", "no XML element"},
		{"bad xml", "<request", "invalid XML"},
		{"wrong root", `<response protocol="3.0"/>`, "not an Omaha request"},
		{"old protocol", `<request protocol="2.0"><app appid="x"/></request>`, "only Omaha 3.0"},
		{"no app", `<request protocol="3.0"></request>`, "no <app>"},
		{"unclosed", `<request protocol="3.0"><app appid="x">`, "invalid XML"},
		{"oversized", `<request protocol="3.0"><app appid="x"/>` + strings.Repeat("<!-- pad -->", MaxBody/12+1) + `</request>`, "larger than"},
	} {
		if _, err := ParseRequest(strings.NewReader(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"4081.2.0", "4081.2.0", 0}, {"4081.2.0", "4081.10.0", -1}, {"4152.2.0", "4081.2.1", 1},
		{"1.0", "1.0.1", -1}, {"2.0.0-rc1", "2.0.0-rc2", -1}, {"10", "9", 1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// FuzzParse: any bytes give a document or an error, never a panic; a
// parsed request re-encodes and parses again to the same apps.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/coreos-request.xml", "testdata/flatcar-request.xml", "testdata/coreos-response.xml", "testdata/flatcar-floors-response.xml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`<request protocol="3.0"><app appid="{x}"><event eventtype="x"/></app></request>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if resp, err := ParseResponse(bytes.NewReader(data)); err == nil {
			for _, app := range resp.Apps {
				if app.UpdateCheck != nil {
					app.UpdateCheck.Offered()
				}
			}
		}
		req, err := ParseRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := ParseRequest(bytes.NewReader(Marshal(noUpdate(req))))
		if err == nil {
			t.Fatalf("a response parsed as a request")
		}
		again, err = ParseRequest(bytes.NewReader(Marshal(req)))
		if err != nil {
			t.Fatalf("re-encoded request does not parse: %v", err)
		}
		if len(again.Apps) != len(req.Apps) || again.Apps[0].AppID != req.Apps[0].AppID {
			t.Fatalf("round trip changed the apps: %+v vs %+v", again.Apps, req.Apps)
		}
	})
}
