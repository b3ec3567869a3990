package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/internal/secureboot"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
)

// SecureBoot is --secure-boot-cert: the operator's Secure Boot db, which
// every EFI loader and every kernel pxeops serves itself must be signed
// for, so a machine with Secure Boot on never downloads what its
// firmware will refuse. serve and check share it.
type SecureBoot struct {
	certFile string
	db       *secureboot.DB
}

// LoadSecureBoot reads the db certificates of certFile (PEM).
func LoadSecureBoot(certFile string) (*SecureBoot, error) {
	db, err := secureboot.LoadDB(certFile)
	if err != nil {
		return nil, &FieldError{Field: "SecureBootCert", Value: certFile, Err: err}
	}
	return &SecureBoot{certFile: certFile, db: db}, nil
}

// Subjects names the db's certificates.
func (s *SecureBoot) Subjects() []string { return s.db.Subjects() }

// Loader is one EFI binary served from the iPXE directory, and the flag
// naming it.
type Loader struct{ Flag, Name string }

// CheckLoaders verifies the EFI binaries in ipxeDir, opened as TFTP and
// /ipxe-bin/ open them (confined to the directory).
func (s *SecureBoot) CheckLoaders(ipxeDir string, loaders ...Loader) error {
	root, err := safefile.OpenRoot(ipxeDir)
	if err != nil {
		return &FieldError{Field: "IPXEDir", Value: ipxeDir, Err: err}
	}
	defer root.Close()
	for _, l := range loaders {
		if l.Name == "" {
			continue
		}
		if _, err := s.db.VerifyFileIn(root, l.Name); err != nil {
			return &FieldError{Field: "SecureBootCert", Value: s.certFile,
				Err: fmt.Errorf("%s (%s in --ipxe-dir %s): %w; sign it with sbsign (README: Secure Boot)", filepath.Join(ipxeDir, l.Name), l.Flag, ipxeDir, err)}
		}
	}
	return nil
}

// Diagnostics checks every kernel the tree names: one under /assets/ must
// verify in assetsDir (an error at the kernel's file:line:col refuses the
// tree, so the last good one keeps serving); one on another server is a
// warning, as it cannot be checked before a machine fetches it.
func (s *SecureBoot) Diagnostics(assetsDir string, snap *render.Snapshot) schema.Diagnostics {
	var root *os.Root
	var rootErr error
	if assetsDir != "" {
		if root, rootErr = safefile.OpenRoot(assetsDir); root != nil {
			defer root.Close()
		}
	}
	checked := map[string]error{} // a kernel several profiles share is read once
	var ds schema.Diagnostics
	check := func(pos schema.Pos, url string) {
		rel, local := strings.CutPrefix(url, "/assets/")
		switch {
		case !local:
			ds = append(ds, schema.Diagnostic{Pos: pos, Severity: schema.Warning,
				Message: fmt.Sprintf("kernel %s is on another server: --secure-boot-cert cannot check its signature before machines fetch it", url)})
		case assetsDir == "":
			ds = append(ds, schema.Diagnostic{Pos: pos, Severity: schema.Warning,
				Message: fmt.Sprintf("kernel %s not checked against --secure-boot-cert: no --assets-dir", url)})
		default:
			err, done := checked[rel]
			if !done {
				if err = rootErr; err == nil {
					_, err = s.db.VerifyFileIn(root, rel)
				}
				checked[rel] = err
			}
			if err != nil {
				ds = append(ds, schema.Diagnostic{Pos: pos, Severity: schema.Error,
					Message: fmt.Sprintf("kernel %s would be refused under Secure Boot (--secure-boot-cert %s): %v", url, s.certFile, err)})
			}
		}
	}
	t := snap.Tree
	ids := make([]string, 0, len(t.Profiles))
	for id := range t.Profiles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if p := t.Profiles[id]; p.Kernel != "" {
			check(p.Pos("kernel"), p.Kernel)
		}
	}
	for _, id := range t.ImageIDs() {
		img := t.Images[id]
		check(img.Pos("kernel.url"), img.Kernel.URL)
		if img.Rollout != nil { // its machines boot that kernel under the same firmware
			check(img.Pos("rollout.kernel.url"), img.Rollout.Kernel.URL)
		}
	}
	return ds
}
