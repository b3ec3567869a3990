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

func TestParseMachineBounds(t *testing.T) {
	q := url.Values{}
	for i := range maxLabels + 1 {
		q.Set("l"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	if _, err := ParseMachine(q); err == nil {
		t.Errorf("%d labels accepted", len(q))
	}
	if _, err := ParseMachine(url.Values{"mac": {"52:54:00:00:00:01", "52:54:00:00:00:02"}}); err == nil {
		t.Error("two different MACs accepted")
	}
}
