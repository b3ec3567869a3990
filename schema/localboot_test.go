package schema

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

// A local profile boots the disk: anything it would boot over the network
// is an error at the field, and the state selector takes one value.
func TestLocalBootProfile(t *testing.T) {
	for _, c := range []struct {
		name, profile, group string
		want                 []string // "file:line:col: message part", each must appear; none: valid
	}{
		{"valid", "boot: local\n", "profile: p\nselector:\n  mac: 52:54:00:00:00:01\n  state: installed\n", nil},
		{"kernel", "boot: local\nkernel: /assets/k\n", "profile: p\n",
			[]string{"profiles/p.yaml:2:9: error: boot: local boots the machine's disk: remove kernel"}},
		{"image args config", "boot: local\nimage: i\nargs: [a]\nconfig:\n  template: t\n", "profile: p\n",
			[]string{"profiles/p.yaml:2:8: error: boot: local boots the machine's disk: remove image",
				"profiles/p.yaml:3:7: error: boot: local boots the machine's disk: remove args",
				"profiles/p.yaml:5:3: error: boot: local boots the machine's disk: remove config"}},
		{"initrd", "boot: local\ninitrd: [/assets/i]\n", "profile: p\n",
			[]string{"profiles/p.yaml:2:9: error: boot: local boots the machine's disk: remove initrd"}},
		{"unknown boot", "boot: disk\nkernel: /assets/k\n", "profile: p\n",
			[]string{`profiles/p.yaml:1:7: error: unknown boot "disk": use network or local`}},
		{"bad state", "boot: local\n", "profile: p\nselector:\n  state: done\n",
			[]string{`groups/g.yaml:3:10: error: invalid state "done": the only state is installed`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree, diags := Load(context.Background(), fstest.MapFS{
				"profiles/p.yaml": {Data: []byte(c.profile)},
				"groups/g.yaml":   {Data: []byte(c.group)},
			}, nil)
			var got []string
			for _, d := range diags {
				if d.Severity == Error {
					got = append(got, d.String())
				}
			}
			if c.want == nil {
				if len(got) > 0 || tree == nil {
					t.Fatalf("errors: %v", got)
				}
				if !tree.Profiles["p"].Local() {
					t.Error("boot: local not read")
				}
				return
			}
			all := strings.Join(got, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing %q in:\n%s", w, all)
				}
			}
		})
	}
}

func TestBootDefaultsToNetwork(t *testing.T) {
	tree, diags := Load(context.Background(), fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\n")},
	}, nil)
	if diags.Errors() > 0 {
		t.Fatal(diags)
	}
	if p := tree.Profiles["p"]; p.Boot != BootNetwork || p.Local() {
		t.Errorf("boot = %q, want %q", p.Boot, BootNetwork)
	}
}

// A request never sets the state: a machine must not declare itself
// installed. An empty state= is absent, as every empty value is.
func TestParseMachineQueryRefusesState(t *testing.T) {
	for _, q := range []string{"mac=52:54:00:00:00:01&state=installed", "state=installed", "state=x"} {
		if m, err := ParseMachineQuery(q); err == nil || !strings.Contains(err.Error(), "state: set by the server") {
			t.Errorf("ParseMachineQuery(%q) = %+v, %v; want it refused", q, m, err)
		}
	}
	m, err := ParseMachineQuery("mac=52:54:00:00:00:01&state=")
	if err != nil || m.State != "" {
		t.Errorf("empty state: %+v, %v", m, err)
	}
	m = Machine{MAC: "52:54:00:00:00:01", State: StateInstalled}
	if m.Value(KeyState) != StateInstalled || !strings.Contains(m.String(), "state=installed") {
		t.Errorf("Value/String: %q %q", m.Value(KeyState), m.String())
	}
	if q := MachineQuery(&m, nil); strings.Contains(q, "state") {
		t.Errorf("MachineQuery carries the state, which a request may not: %s", q)
	}
}
