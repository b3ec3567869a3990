package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxeops/pxeops/internal/gentree"
	"github.com/pxeops/pxeops/internal/gittest"
)

// BenchmarkCommitToServed measures, for a 10,000-group repository served
// over git daemon on loopback, the time from a pushed commit's webhook to
// the server answering with that commit (ls-remote, depth-1 fetch, tree
// snapshot, load, swap). The push itself is reported apart. Target: under
// 1 s.
func BenchmarkCommitToServed(b *testing.B) {
	r := gittest.New(b)
	files := map[string]string{}
	for name, data := range gentree.Files(10000, 100) {
		files[name] = string(data)
	}
	r.Commit("fleet", files)
	url, _ := r.Daemon()
	secretFile := filepath.Join(b.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(hookSecret), 0o600); err != nil {
		b.Fatal(err)
	}
	s := startServe(b, url, "--state-dir", b.TempDir(), "--poll", "1h", "--webhook-secret-file", secretFile, "--log-level", "warn")
	mac := gentree.MAC(1234)
	s.eventually(b, "the fleet is served", func() bool { code, _, _ := s.get("/ipxe?mac=" + mac); return code == 200 })
	var push, served time.Duration
	b.ResetTimer()
	for i := range b.N {
		role := fmt.Sprintf("pxeops.role=r%d", 100+i)
		b.StopTimer()
		start := time.Now()
		commit := r.Commit(role, map[string]string{"profiles/p034.yaml": strings.Replace(files["profiles/p034.yaml"], "pxeops.role=r34", role, 1)})
		push += time.Since(start)
		b.StartTimer()
		start = time.Now()
		if code := postHook(b, s); code != http.StatusAccepted {
			b.Fatalf("webhook: %d", code)
		}
		s.eventually(b, "the commit is served", func() bool {
			_, body, h := s.get("/ipxe?mac=" + mac)
			return h.Get("X-Pxeops-Revision") == commit && strings.Contains(body, role)
		})
		served += time.Since(start)
	}
	b.ReportMetric(float64(served.Milliseconds())/float64(b.N), "ms/webhook-to-served")
	b.ReportMetric(float64(push.Milliseconds())/float64(b.N), "ms/commit+push")
}
