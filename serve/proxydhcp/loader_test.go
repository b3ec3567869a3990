package proxydhcp

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/pxeops/pxeops/internal/txtar"
	"github.com/pxeops/pxeops/render"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// firmwares are the clients of the loader decision: option 60 and 93 as
// each sends them (testdata/dhcp/README.md), and the port it asks on.
var firmwares = []struct {
	name  string
	class string
	arch  uint16
	port  Port
	mt    dhcpv4.MessageType
	extra []dhcpv4.Option
}{
	{"bios", "PXEClient:Arch:00000:UNDI:002001", 0, ProxyPort, dhcpv4.MessageTypeDiscover, nil},
	{"uefi-x64", "PXEClient:Arch:00007:UNDI:003000", 7, ProxyPort, dhcpv4.MessageTypeDiscover, nil},
	{"uefi-x64:4011", "PXEClient:Arch:00007:UNDI:003000", 7, BootServerPort, dhcpv4.MessageTypeRequest, nil},
	{"uefi-x64-http", "HTTPClient:Arch:00016:UNDI:003000", 16, ProxyPort, dhcpv4.MessageTypeDiscover, nil},
	{"ipxe-efi", "PXEClient:Arch:00007:UNDI:003010", 7, ProxyPort, dhcpv4.MessageTypeRequest, []dhcpv4.Option{dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))}},
	{"aavmf", "PXEClient:Arch:00011:UNDI:003000", 11, ProxyPort, dhcpv4.MessageTypeDiscover, nil},
	{"aavmf:4011", "PXEClient:Arch:00011:UNDI:003000", 11, BootServerPort, dhcpv4.MessageTypeRequest, nil},
	{"aavmf-http", "HTTPClient:Arch:00019:UNDI:003000", 19, ProxyPort, dhcpv4.MessageTypeDiscover, nil},
}

// TestLoaderDecision: golden cases of what each firmware type gets first
// under each server configuration, for every machine of a tree. Each
// testdata/loader-*.txtar holds the tree, a "machines" section (one MAC
// a line) and a "config" section (one configuration a line: name, then
// field=value), and wants one line per config, machine and firmware.
func TestLoaderDecision(t *testing.T) {
	files, _ := filepath.Glob("testdata/loader-*.txtar")
	if len(files) == 0 {
		t.Fatal("no testdata/loader-*.txtar")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			tree := fstest.MapFS{}
			for _, f := range a.Files {
				if strings.HasSuffix(f.Name, ".yaml") {
					tree[f.Name] = &fstest.MapFile{Data: f.Data}
				}
			}
			snap, diags := render.Load(context.Background(), tree, render.Options{ServerURL: cfg.ServerURL})
			if snap == nil {
				t.Fatal(diags)
			}
			machines, _ := a.Get("machines")
			configs, _ := a.Get("config")
			var out strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(string(configs)), "\n") {
				name, c := parseConfig(t, line)
				for _, m := range strings.Fields(string(machines)) {
					mac, err := net.ParseMAC(m)
					if err != nil {
						t.Fatal(err)
					}
					for _, fw := range firmwares {
						req := request(t, fw.mt, fw.class, fw.arch, fw.extra...)
						req.ClientHWAddr = mac
						reply, why := Answer(req, fw.port, snap, c)
						got := "no answer: " + why.Reason
						if reply != nil {
							got = reply.BootFileName
						}
						fmt.Fprintf(&out, "%s %s %s: %s\n", name, m, fw.name, got)
					}
				}
			}
			want, ok := a.Get("want")
			if *update {
				a.Set("want", []byte(out.String()))
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !ok || out.String() != string(want) {
				t.Errorf("differs from the want section (go test ./serve/proxydhcp -run TestLoaderDecision -update, then review).\n--- got ---\n%s--- want ---\n%s", out.String(), want)
			}
		})
	}
}

// parseConfig reads "name Field=value ..." onto the package's cfg.
func parseConfig(t *testing.T, line string) (string, Config) {
	fields := strings.Fields(line)
	c := cfg
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "EFIFile":
			c.EFIFile = v
		case "ARM64File":
			c.ARM64File = v
		case "ShimFile":
			c.ShimFile = v
		case "ARM64ShimFile":
			c.ARM64ShimFile = v
		default:
			t.Fatalf("config %q: unknown field %s", line, k)
		}
	}
	return fields[0], c
}
