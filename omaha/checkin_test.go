package omaha_test

import (
	"os"
	"testing"

	"github.com/pxeops/pxeops/omaha"
)

// CheckIn hears each host's address and the version of its OS app.
func TestResponderCheckIn(t *testing.T) {
	var addrs, versions []string
	rs := &omaha.Responder{CheckIn: func(addr, version string) {
		addrs, versions = append(addrs, addr), append(versions, version)
	}}
	data, err := os.ReadFile("testdata/flatcar-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	if rec := post(t, rs, data); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	post(t, rs, []byte("not xml")) // a malformed request is no check-in
	if len(addrs) != 1 || addrs[0] != "192.0.2.1:1234" || versions[0] != "3975.2.0" {
		t.Errorf("check-ins %q %q; want one from 192.0.2.1:1234 running 3975.2.0", addrs, versions)
	}
}
