package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pxeops/pxeops/internal/daemon"
	"github.com/pxeops/pxeops/omaha/updater"
	"github.com/pxeops/pxeops/render"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/serve/access"
)

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("check", "check [--format text|json|github] [--access MODE] [--secure-boot-cert FILE --assets-dir DIR [--ipxe-dir DIR]] [DIR]\n\nValidates a config repository exactly as the server loads it. Exit 0 valid, 1 invalid, 2 usage.", stderr)
	format := &choice{value: "text", allowed: []string{"text", "json", "github"}}
	fset.Var(format, "format", "output: text, json or github (Actions annotations)")
	accessMode := &choice{value: "auto", allowed: access.Modes()}
	fset.Var(accessMode, "access", "the server's --access mode the tree must be safe under: a secret it would give away is an error ("+strings.Join(access.Modes(), ", ")+")")
	sbCert := fset.String("secure-boot-cert", "", "PEM certificates of the machines' Secure Boot db, as serve's: every kernel under /assets/ must be signed for it (needs --assets-dir), and --efi-binary and --arm64-binary when --ipxe-dir is given")
	assetsDir := fset.String("assets-dir", "", "serve's --assets-dir: where the kernels under /assets/ are, for --secure-boot-cert")
	ipxeDir := fset.String("ipxe-dir", "", "serve's --ipxe-dir: with --secure-boot-cert, its EFI binaries are checked too; empty: not checked")
	efiFile := fset.String("efi-binary", "snponly.efi", "serve's --efi-binary, in --ipxe-dir")
	arm64File := fset.String("arm64-binary", "", "serve's --arm64-binary, in --ipxe-dir")
	var g gitFlags
	g.register(fset)
	var sf secretsFlags
	sf.register(fset, true)
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	secrets, err := sf.load()
	if err != nil {
		fmt.Fprintf(stderr, "pxeops check: %v\n", err)
		return exitUsage
	}
	var sb *daemon.SecureBoot
	var loaderDiags schema.Diagnostics
	if *sbCert != "" {
		if sb, err = daemon.LoadSecureBoot(*sbCert); err != nil {
			fmt.Fprintf(stderr, "pxeops check: %s\n", serveFlagError(err))
			return exitUsage
		}
		if *ipxeDir != "" {
			// Not the tree's, but a machine would not boot either: an
			// error at the binary's own path.
			for _, l := range []daemon.Loader{{Flag: "--efi-binary", Name: *efiFile}, {Flag: "--arm64-binary", Name: *arm64File}} {
				err := sb.CheckLoaders(*ipxeDir, l)
				if err == nil {
					continue
				}
				var fe *daemon.FieldError
				if errors.As(err, &fe) && fe.Field == "IPXEDir" {
					fmt.Fprintf(stderr, "pxeops check: %s\n", serveFlagError(err))
					return exitUsage
				}
				abs, _ := filepath.Abs(filepath.Join(*ipxeDir, l.Name))
				loaderDiags = append(loaderDiags, schema.Diagnostic{Pos: schema.Pos{File: abs}, Severity: schema.Error, Message: serveFlagError(err)})
			}
		}
	}
	tree, dir, cleanup, code := openTree(ctx, fset, &g, stderr)
	if code >= 0 {
		return code
	}
	defer cleanup()
	snap, diags := render.Load(ctx, tree, render.Options{ServerURL: schema.SampleServerURL, Secrets: secrets})
	if err := context.Cause(ctx); err != nil {
		fmt.Fprintf(stderr, "pxeops check: interrupted: %v\n", err)
		return exitInvalid
	}
	if mode, _ := access.ParseMode(accessMode.value); snap != nil {
		if leaks := daemon.AccessDiagnostics(mode, snap); len(leaks) > 0 {
			diags, snap = append(diags, leaks...), nil // refused by a server in that mode, so invalid
		}
	}
	if sb != nil && snap != nil {
		if sds := sb.Diagnostics(*assetsDir, snap); len(sds) > 0 {
			if diags = append(diags, sds...); sds.Errors() > 0 {
				snap = nil // a server with the same --secure-boot-cert refuses it
			}
		}
	}
	if len(loaderDiags) > 0 {
		diags, snap = append(loaderDiags, diags...), nil
	}
	if snap != nil {
		diags = append(diags, updater.KeyringNotices(snap.Tree)...)
	}
	r := checkReport{Dir: dir, Valid: snap != nil, Errors: diags.Errors(), Warnings: diags.Warnings(), Diagnostics: diags}
	if r.Diagnostics == nil {
		r.Diagnostics = schema.Diagnostics{} // a list in JSON: [], not null, for jq and typed readers
	}
	if snap != nil {
		r.Digest = snap.Digest
		r.Profiles, r.Groups, r.Images, r.Templates = len(snap.Tree.Profiles), len(snap.Tree.Groups), len(snap.Tree.Images), len(snap.Tree.Templates)
	}
	for i := range r.Diagnostics {
		if !filepath.IsAbs(r.Diagnostics[i].File) { // a loader's own path
			r.Diagnostics[i].File = filepath.Join(dir, r.Diagnostics[i].File)
		}
	}
	switch format.value {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	case "github":
		for _, d := range r.Diagnostics {
			fmt.Fprintln(stdout, githubAnnotation(d))
		}
		fmt.Fprintln(stdout, r.summary())
	default:
		for _, d := range r.Diagnostics {
			fmt.Fprintln(stdout, d)
		}
		fmt.Fprintln(stdout, r.summary())
	}
	if !r.Valid {
		return exitInvalid
	}
	return exitOK
}

// checkReport is check's result; its JSON form is a stable interface.
type checkReport struct {
	Dir         string             `json:"dir"`
	Valid       bool               `json:"valid"`
	Errors      int                `json:"errors"`
	Warnings    int                `json:"warnings"`
	Digest      string             `json:"digest,omitempty"`
	Profiles    int                `json:"profiles"`
	Groups      int                `json:"groups"`
	Images      int                `json:"images"`
	Templates   int                `json:"templates"`
	Diagnostics schema.Diagnostics `json:"diagnostics"`
}

func (r *checkReport) summary() string {
	if !r.Valid {
		return fmt.Sprintf("%s: invalid: %s, %s", r.Dir, plural(r.Errors, "error"), plural(r.Warnings, "warning"))
	}
	return fmt.Sprintf("%s: valid: %s, %s, %s, %s, %s; digest %s", r.Dir,
		plural(r.Profiles, "profile"), plural(r.Groups, "group"), plural(r.Images, "image"), plural(r.Templates, "template"),
		plural(r.Warnings, "warning"), r.Digest)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// githubAnnotation formats a diagnostic as a GitHub Actions workflow command.
func githubAnnotation(d schema.Diagnostic) string {
	props := "file=" + escapeProperty(d.File)
	if d.Line > 0 {
		props += fmt.Sprintf(",line=%d", d.Line)
	}
	if d.Col > 0 {
		props += fmt.Sprintf(",col=%d", d.Col)
	}
	return fmt.Sprintf("::%s %s,title=pxeops check::%s", d.Severity, props, escapeData(d.Message))
}

func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
