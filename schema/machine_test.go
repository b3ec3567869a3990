package schema

import (
	"maps"
	"net/url"
	"reflect"
	"strings"
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

// A query that does not parse whole is refused, never served as the part
// that did parse: that part may match the default group.
func TestParseMachineQueryStrict(t *testing.T) {
	many := strings.Repeat("x=1&", 10000) + "mac=52:54:00:00:00:01"
	for _, c := range []struct{ query, want string }{
		{"mac=52:54:00:00:00:01;x=1", "semicolon"},
		{"mac=52:54:00:00:00:01&x=%zz", `invalid URL escape "%zz"`},
		{many, "10001 parameters, at most 64"},
		{strings.Repeat("&", MaxQueryParams) + "mac=52:54:00:00:00:01", "65 parameters, at most 64"},
		{"mac=52:54:00:00:00:01&mac=52:54:00:00:00:01", "mac: given 2 times"},
		{"mac=&mac=52:54:00:00:00:01", "mac: given 2 times"},
		{"rack=r1&rack=r1", "rack: given 2 times"},
		{"Bad%20Key=1&Bad%20Key=2", `"Bad Key": given 2 times`},
		{"hostname=" + strings.Repeat("a", MaxQueryLen), "query of 8201 bytes, at most 8192"},
	} {
		m, err := ParseMachineQuery(c.query)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseMachineQuery(%.60q) = %v, %v; want an error containing %q", c.query, m, err, c.want)
		}
	}
	m, err := ParseMachineQuery("mac=52-54-00-12-34-56&uuid=&hostname=&serial=&arch=x86_64")
	if err != nil || m.MAC != "52:54:00:12:34:56" || m.Arch != "x86_64" {
		t.Errorf("/boot.ipxe's query: %+v, %v", m, err)
	}
}

// Errors quote what they were given, clipped: an answer must not echo a
// large input back.
func TestParseMachineErrorsClipInput(t *testing.T) {
	big := strings.Repeat("é", 30000) // 60 KB; clipping must not split a rune
	for _, q := range []url.Values{
		{"mac": {big}}, {"uuid": {big}}, {"hostname": {big}}, {"arch": {big}}, {"serial": {big}},
		{"rack": {big}}, {big: {"v"}}, {big: {"v", "w"}},
	} {
		_, err := ParseMachine(q)
		if err == nil {
			t.Fatalf("60 KB input accepted")
		}
		if msg := err.Error(); len(msg) > 400 || !strings.Contains(msg, "… (60000 bytes)") || !strings.Contains(msg, `"éé`) {
			t.Errorf("error of %d bytes: %.500s", len(msg), msg)
		}
	}
	if got := quoteInput("short"); got != `"short"` {
		t.Errorf("quoteInput(short) = %s", got)
	}
}

// FuzzParseMachineQuery: any query either fails with a short error or
// gives a machine whose values are safe for a script and survive a second
// parse unchanged (normalisation is idempotent, so both sides of a match
// agree).
func FuzzParseMachineQuery(f *testing.F) {
	for _, s := range []string{
		// what /boot.ipxe makes iPXE send
		"mac=52-54-00-12-34-56&uuid=4c4c4544-0042-3510-8050-b4c04f4d3232&hostname=&serial=&arch=x86_64",
		"mac=52-54-00-12-34-56&uuid=&hostname=node1.lab&serial=To%20be%20filled%20by%20O.E.M.&arch=arm64",
		"mac=52:54:00:12:34:56&rack=r7&zone=eu-1",
		"mac=52:54:00:12:34:56;x=1",
		"mac=5254.0012.3456&mac=52:54:00:12:34:56",
		"hostname=a%20b&x=%zz",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := ParseMachineQuery(raw)
		if err != nil {
			if len(err.Error()) > 1024 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		q := url.Values{}
		for _, k := range []string{KeyMAC, KeyUUID, KeyHostname, KeySerial, KeyArch} {
			if v := m.Value(k); v != "" {
				if checkSafe(v) != nil {
					t.Fatalf("%s=%q is not safe", k, v)
				}
				q.Set(k, v)
			}
		}
		for k, v := range m.Labels {
			if checkSafe(v) != nil || CheckLabelKey(k) != nil {
				t.Fatalf("label %q=%q is not safe", k, v)
			}
			q.Set(k, v)
		}
		again, err := ParseMachineQuery(q.Encode())
		if err != nil {
			t.Fatalf("%+v does not parse again: %v", m, err)
		}
		if len(m.Labels) == 0 {
			m.Labels = nil
		}
		if !reflect.DeepEqual(again, m) || !maps.Equal(again.Labels, m.Labels) {
			t.Fatalf("parsed %+v, then %+v", m, again)
		}
	})
}
