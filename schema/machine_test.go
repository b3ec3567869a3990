package schema

import (
	"net/url"
	"testing"
)

func TestParseMachineEmptyValuesAreAbsent(t *testing.T) {
	m, err := ParseMachine(url.Values{"mac": {"52:54:00:00:00:01"}, "hostname": {""}, "serial": {""}, "uuid": {""}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Hostname != "" || m.Serial != "" || m.MAC != "52:54:00:00:00:01" {
		t.Errorf("got %+v", m)
	}
}
