package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxeops/pxeops/serve/tftpserver"
	"github.com/pxeops/pxeops/source/pixiecoreapi"
)

// Pixiecore's API mode over real sockets: a machine's first request is
// not answered but makes pxeops ask the API; once the API said to boot
// it, its next request is, and its script boots what the API named. A
// machine the API refuses is never answered.
func TestPixiecoreAPIMode(t *testing.T) {
	var asked atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path != "/v1/boot/52:54:00:00:00:01" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"kernel": "/files/vmlinuz", "initrd": ["/files/initrd.gz"], "cmdline": "console=ttyS0"}`)
	}))
	defer api.Close()
	client, err := pixiecoreapi.New(api.URL, pixiecoreapi.Options{})
	must(t, err)
	src := pixiecoreapi.NewSource(client)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tl, err := tftpserver.Listen("127.0.0.1:0")
	must(t, err)
	boot := udpConn(t)
	r := start(t, Config{Source: "api", Tree: src, Seen: src.Asker(ctx, 2, 16), ProxyDHCP: true, Interface: "lo",
		DHCPConn: udpConn(t), BootServerConn: boot, TFTPListener: tl,
		IPXEDir: ipxeDir(t), BIOSBinary: "undionly.kpxe", EFIBinary: "snponly.efi"})

	const mac = "52:54:00:00:00:01"
	if reply := bootServerReply(t, boot.LocalAddr(), "127.0.0.1", "127.0.0.1", mac); reply != nil {
		t.Fatalf("answered before the API was asked: %v", reply)
	}
	var reply interface{ String() string }
	r.until(t, 10*time.Second, "the machine is answered once the API said to boot it", func() bool {
		rep := bootServerReply(t, boot.LocalAddr(), "127.0.0.1", "127.0.0.1", mac)
		if rep != nil && rep.BootFileName == "snponly.efi" {
			reply = rep
			return true
		}
		return false
	})
	code, body := r.get("/ipxe?mac=" + mac)
	if code != 200 || !strings.Contains(body, "kernel "+api.URL+"/files/vmlinuz") || !strings.Contains(body, "console=ttyS0") || !strings.Contains(body, api.URL+"/files/initrd.gz") {
		t.Errorf("the machine's script: %d %q (reply %v)", code, body, reply)
	}
	before := asked.Load()
	if rep := bootServerReply(t, boot.LocalAddr(), "127.0.0.1", "127.0.0.1", "52:54:00:00:00:02"); rep != nil {
		t.Errorf("a machine the API refuses was answered: %v", rep)
	}
	r.until(t, 5*time.Second, "the API is asked about the second machine", func() bool { return asked.Load() > before })
	time.Sleep(200 * time.Millisecond)
	if rep := bootServerReply(t, boot.LocalAddr(), "127.0.0.1", "127.0.0.1", "52:54:00:00:00:02"); rep != nil {
		t.Errorf("a machine the API refuses was answered on its retry: %v", rep)
	}
}
