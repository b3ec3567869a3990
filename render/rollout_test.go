package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pxeops/pxeops/schema"
)

// rolloutTree is an image at 4081.2.0 with a rollout of version at share,
// a profile whose argument and config name .Image.Version, and a default
// group: every machine matches, and both its script and config are
// rendered once per side, then reused.
func rolloutTree(version, share string) fstest.MapFS {
	return fstest.MapFS{
		"images/flatcar-stable.yaml": {Data: []byte(`os: flatcar
channel: stable
version: 4081.2.0
kernel: {url: /assets/flatcar/4081.2.0/vmlinuz}
initrd: [{url: /assets/flatcar/4081.2.0/initrd.cpio.gz}]
rollout:
  version: ` + version + `
  share: ` + share + `
  kernel: {url: /assets/flatcar/` + version + `/vmlinuz}
  initrd: [{url: /assets/flatcar/` + version + `/initrd.cpio.gz}]
`)},
		"profiles/worker.yaml": {Data: []byte("image: flatcar-stable\nargs: [\"v={{ .Image.Version }}\"]\nconfig: {template: c.yaml, type: raw}\n")},
		"templates/c.yaml":     {Data: []byte("version: {{ .Image.Version }}\n")},
		"groups/default.yaml":  {Data: []byte("profile: worker\n")},
	}
}

func testMAC(i int) string {
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
}

// The bucket is the documented formula, whatever path computes it: the
// vectors were computed apart from Go (README's sha256sum line), and the
// stack-buffer path agrees with the plain one, also for an image id too
// long for the buffer.
func TestRolloutBucketIsTheDocumentedHash(t *testing.T) {
	for _, c := range []struct {
		mac  string
		want int
	}{
		{"52:54:00:12:34:01", 5935}, {"52:54:00:12:34:03", 3794}, {"52:54:00:12:34:0f", 565}, {"52:54:00:12:34:14", 9991},
	} {
		if got := RolloutBucket("flatcar-stable", "4116.0.0", c.mac); got != c.want {
			t.Errorf("bucket of %s: %d, want %d (printf 'flatcar-stable\\n4116.0.0\\n%s' | sha256sum)", c.mac, got, c.want, c.mac)
		}
	}
	long := strings.Repeat("i", 300)
	for i := range 500 {
		mac := testMAC(i * 7919)
		for _, image := range []string{"flatcar-stable", long} {
			sum := sha256.Sum256([]byte(image + "\n" + "4116.0.0" + "\n" + mac))
			want := int(binary.BigEndian.Uint32(sum[:4]) % 10000)
			if got := RolloutBucket(image, "4116.0.0", mac); got != want {
				t.Fatalf("bucket of %s for image of %d bytes: %d, want %d", mac, len(image), got, want)
			}
		}
	}
}

// Raising the share never moves a machine back to the pinned version,
// and a share of n hundredths puts about n/10000 of the machines on the
// rollout.
func TestRolloutShareOnlyAddsMachines(t *testing.T) {
	shares := []schema.Share{0, 1, 100, 1000, 2500, 5000, 9000, 9999, schema.FullShare}
	const machines = 20000
	rng := rand.New(rand.NewPCG(18, 3))
	on := make([]int, len(shares))
	for range machines {
		mac := testMAC(rng.IntN(1 << 30))
		before := false
		for j, s := range shares {
			now := RolloutSide("flatcar-stable", "4116.0.0", mac, s)
			if before && !now {
				t.Fatalf("%s is on the rollout at %s and not at %s", mac, shares[j-1], s)
			}
			if now {
				on[j]++
			}
			before = now
		}
	}
	for j, s := range shares {
		want := float64(machines) * s.Percent() / 100
		// Binomial: within four standard deviations, and at least 2.
		sd := max(4*math.Sqrt(want*(1-s.Percent()/100)), 2)
		if d := float64(on[j]) - want; d > sd || d < -sd {
			t.Errorf("share %s: %d of %d machines on the rollout, want %.0f ± %.0f", s, on[j], machines, want, sd)
		}
	}
	if on[0] != 0 || on[len(on)-1] != machines {
		t.Errorf("0%%: %d machines on the rollout, 100%%: %d of %d", on[0], on[len(on)-1], machines)
	}
	if RolloutSide("flatcar-stable", "4116.0.0", "", 9999) || !RolloutSide("flatcar-stable", "4116.0.0", "", schema.FullShare) {
		t.Error("a request without a MAC: on the rollout below 100%, or not at 100%")
	}
}

// The rollout's version salts the hash: the next rollout's canaries are
// not the last one's again.
func TestRolloutVersionPicksNewCanaries(t *testing.T) {
	both, first, second := 0, 0, 0
	for i := range 10000 {
		mac := testMAC(i)
		a := RolloutSide("flatcar-stable", "4116.0.0", mac, 1000)
		b := RolloutSide("flatcar-stable", "4152.0.0", mac, 1000)
		if a {
			first++
		}
		if b {
			second++
		}
		if a && b {
			both++
		}
	}
	// Independent sets of 10 % overlap in about 1 % of machines.
	if both > first/5 || first == 0 || second == 0 {
		t.Errorf("10 %% of 10,000: %d on 4116.0.0, %d on 4152.0.0, %d on both", first, second, both)
	}
}

// A machine is on the same side in two snapshots built apart (a reload,
// with and without the previous load's cache), and raising the share in
// the tree keeps it on the rollout; the whole script agrees, not only the
// side.
func TestRolloutSideSurvivesReloads(t *testing.T) {
	load := func(tree fstest.MapFS, cache *schema.Cache) *Snapshot {
		snap, diags := Load(context.Background(), tree, Options{ServerURL: "http://pxe.test:8080", Cache: cache})
		if snap == nil {
			t.Fatal(diags)
		}
		return snap
	}
	cache := schema.NewCache()
	a := load(rolloutTree("4116.0.0", "10%"), cache)
	b := load(rolloutTree("4116.0.0", "10%"), cache)
	c := load(rolloutTree("4116.0.0", "10%"), nil)
	up := load(rolloutTree("4116.0.0", "50%"), cache)
	script := func(s *Snapshot, mac string) string {
		m := Machine{MAC: mac}
		var out bytes.Buffer
		if err := s.WriteScript(&out, s.Lookup(&m), &m); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	onA, onUp := 0, 0
	for i := range 2000 {
		mac := testMAC(i * 104729)
		sa := script(a, mac)
		if sb, sc := script(b, mac), script(c, mac); sa != sb || sa != sc {
			t.Fatalf("%s: scripts differ between loads:\n%s\n%s\n%s", mac, sa, sb, sc)
		}
		wantKernel := "/assets/flatcar/4081.2.0/vmlinuz"
		if RolloutSide("flatcar-stable", "4116.0.0", mac, 1000) {
			wantKernel = "/assets/flatcar/4116.0.0/vmlinuz"
			onA++
		}
		if !strings.Contains(sa, "http://pxe.test:8080"+wantKernel+" ") {
			t.Fatalf("%s: script boots another kernel than %s:\n%s", mac, wantKernel, sa)
		}
		rollout := strings.Contains(sa, "v=4116.0.0")
		if strings.Contains(script(up, mac), "v=4116.0.0") {
			onUp++
		} else if rollout {
			t.Fatalf("%s: on 4116.0.0 at 10%%, back on 4081.2.0 at 50%%", mac)
		}
	}
	if onA == 0 || onUp <= onA {
		t.Errorf("of 2000 machines, %d on the rollout at 10%% and %d at 50%%", onA, onUp)
	}
}

// macOnSide finds a MAC on the given side of the rollout of tree's image.
func macOnSide(t testing.TB, version string, share schema.Share, rollout bool) string {
	t.Helper()
	for i := range 10000 {
		if mac := testMAC(i); RolloutSide("flatcar-stable", version, mac, share) == rollout {
			return mac
		}
	}
	t.Fatal("no MAC on that side in 10,000")
	return ""
}

// Everything that names the version follows the side: the script, the
// config (.Image.Version), the Pixiecore body, the template data. A
// group's cached script and config are kept per side, so the first
// machine of one side never decides what the other side gets.
func TestRolloutSideOfEveryAnswer(t *testing.T) {
	snap := mustLoad(t, rolloutTree("4116.0.0", "50%"))
	pinned, canary := macOnSide(t, "4116.0.0", 5000, false), macOnSide(t, "4116.0.0", 5000, true)
	for round := range 2 { // the second round reads the caches
		for _, c := range []struct{ mac, version string }{{canary, "4116.0.0"}, {pinned, "4081.2.0"}} {
			m := Machine{MAC: c.mac}
			g := snap.Lookup(&m)
			var script, config, pxc bytes.Buffer
			if err := snap.WriteScript(&script, g, &m); err != nil {
				t.Fatal(err)
			}
			if err := snap.WriteConfig(&config, g, &m); err != nil {
				t.Fatal(err)
			}
			if err := snap.WritePixiecore(&pxc, g, &m, nil); err != nil {
				t.Fatal(err)
			}
			kernel := "http://pxe.test:8080/assets/flatcar/" + c.version + "/vmlinuz"
			if !strings.HasPrefix(script.String(), "#!ipxe\nkernel "+kernel+" ") || !strings.Contains(script.String(), "/"+c.version+"/initrd.cpio.gz\n") ||
				!strings.Contains(script.String(), " v="+c.version+"\n") {
				t.Errorf("round %d, %s: script\n%s", round, c.mac, script.String())
			}
			if config.String() != "version: "+c.version+"\n" {
				t.Errorf("round %d, %s: config %q", round, c.mac, config.String())
			}
			if !strings.Contains(pxc.String(), `"kernel":"`+kernel+`"`) || !strings.Contains(pxc.String(), `"cmdline":"v=`+c.version+`"`) {
				t.Errorf("round %d, %s: pixiecore %s", round, c.mac, pxc.String())
			}
			if d := g.Data(&m); d.Image.Version != c.version || d.Image.ID != "flatcar-stable" {
				t.Errorf("round %d, %s: template data image %+v", round, c.mac, d.Image)
			}
			if f := g.Profile.Boot(c.mac); f.Version != c.version || f.OnRollout != (c.version == "4116.0.0") {
				t.Errorf("round %d, %s: Boot = %s, rollout %v", round, c.mac, f.Version, f.OnRollout)
			}
		}
	}
	r := snap.Lookup(&Machine{MAC: pinned}).Profile.Rollout()
	if r == nil || r.Image != "flatcar-stable" || r.Pinned != "4081.2.0" || r.Version != "4116.0.0" || r.Share != 5000 {
		t.Errorf("Rollout() = %+v", r)
	}
}

// Choosing the side costs no allocation, so the /ipxe path of a rollout
// group that reuses its script allocates nothing more than without one;
// a profile without a rollout does not hash at all (not measurable here:
// see BenchmarkIPXERollout).
func TestRolloutSideDoesNotAllocate(t *testing.T) {
	snap := mustLoad(t, rolloutTree("4116.0.0", "50%"))
	plain := mustLoad(t, fstest.MapFS{
		"profiles/p.yaml": {Data: []byte("kernel: /assets/k\n")},
		"groups/g.yaml":   {Data: []byte("profile: p\n")},
	})
	canary := macOnSide(t, "4116.0.0", 5000, true)
	m := Machine{MAC: canary}
	g := snap.Lookup(&m)
	pg := plain.Lookup(&m)
	if err := snap.WriteScript(io.Discard, g, &m); err != nil { // fills the cache
		t.Fatal(err)
	}
	if err := plain.WriteScript(io.Discard, pg, &m); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(){
		"Boot":                    func() { g.Profile.Boot(canary) },
		"WriteScript, rollout":    func() { snap.WriteScript(io.Discard, g, &m) },
		"WriteScript, no rollout": func() { plain.WriteScript(io.Discard, pg, &m) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %.0f allocations", name, n)
		}
	}
}

// BenchmarkRolloutBoot is choosing a machine's side: what a rollout
// adds to each boot answer (BenchmarkIPXERollout in serve/httpserver is
// the whole request).
func BenchmarkRolloutBoot(b *testing.B) {
	snap := mustLoad(b, rolloutTree("4116.0.0", "50%"))
	p := snap.Lookup(&Machine{MAC: testMAC(1)}).Profile
	b.ReportAllocs()
	for b.Loop() {
		p.Boot("52:54:00:12:34:0f")
	}
}
