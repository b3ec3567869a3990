package tftpserver

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxeops/pxeops/internal/safefile/fifotest"
)

// A read request for a named pipe in the iPXE directory gets an error
// packet at once: opening it used to wait for a writer, holding a
// goroutine, a thread and a descriptor per request until descriptors ran
// out and real files were refused too.
func TestFIFOIsNotFoundAtOnce(t *testing.T) {
	addr, dir, _ := serve(t)
	fifotest.Mkfifo(t, filepath.Join(dir, "fifo.efi")) // after serve: releases the handler before Shutdown waits
	if err := os.Symlink("fifo.efi", filepath.Join(dir, "link.efi")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		name := []string{"fifo.efi", "link.efi"}[i%2]
		_, answer, _ := request(t, addr, []byte("\x00\x01"+name+"\x00octet\x00"))
		if len(answer) < 4 || binary.BigEndian.Uint16(answer) != 5 || !strings.Contains(string(answer[4:]), "file not found") {
			t.Fatalf("answer to RRQ %s: %q; want an ERROR, file not found", name, answer)
		}
	}
	if got, _, err := fetch(t, addr, "sub/snp.efi", 0); err != nil || string(got) != "arm64" {
		t.Errorf("a real file after them: %q %v", got, err)
	}
}
