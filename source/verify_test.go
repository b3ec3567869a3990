package source

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pxeops/pxeops/internal/gittest"
)

func newKey(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", name+"@pxeops.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armoredPublic(t *testing.T, keys ...*openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := k.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return b.Bytes()
}

// signedCommit commits files in the work repository with go-git, signed
// by key (unsigned when nil), pushes, and returns the hash.
func signedCommit(t *testing.T, r *gittest.Remote, key *openpgp.Entity, msg string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(r.Work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := git.PlainOpen(r.Work)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "tester", Email: "t@pxeops.invalid", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	r.Git("push", "-q", "--force", "origin", "HEAD")
	return h.String()
}

// tamper rewrites the head commit's message but keeps its signature, as
// someone editing a signed commit would, and pushes the result.
func tamper(t *testing.T, r *gittest.Remote) string {
	t.Helper()
	repo, err := git.PlainOpen(r.Work)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := repo.Head()
	c, _ := repo.CommitObject(head.Hash())
	forged := *c
	forged.Message = c.Message + " (edited)"
	obj := repo.Storer.NewEncodedObject()
	if err := forged.EncodeWithoutSignature(obj); err != nil {
		t.Fatal(err)
	}
	// Encode again with the original signature attached.
	obj = repo.Storer.NewEncodedObject()
	if err := forged.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(head.Name(), h)); err != nil {
		t.Fatal(err)
	}
	r.Git("push", "-q", "--force", "origin", "HEAD")
	return h.String()
}

func TestVerifyCommits(t *testing.T) {
	trusted, stranger := newKey(t, "trusted"), newKey(t, "stranger")
	v, err := NewVerifier(armoredPublic(t, trusted), VerifyHead)
	if err != nil {
		t.Fatal(err)
	}
	r := gittest.New(t)
	g := newGit(t, r.FileURL(), t.TempDir(), func(o *GitOptions) { o.Verify = v })
	ctx := context.Background()

	good := signedCommit(t, r, trusted, "good", map[string]string{"groups/g.yaml": groupFile("a")})
	if rev, err := g.Once(ctx); err != nil || rev.ID != good {
		t.Fatalf("commit signed by the trusted key: %s %v", rev.ID, err)
	}
	for _, c := range []struct {
		name string
		make func() string
		want string
	}{
		{"unsigned", func() string {
			return signedCommit(t, r, nil, "unsigned", map[string]string{"groups/g.yaml": groupFile("b")})
		}, "is not signed"},
		{"unknown key", func() string {
			return signedCommit(t, r, stranger, "stranger", map[string]string{"groups/g.yaml": groupFile("c")})
		}, "signature not valid for the keyring"},
		{"tampered", func() string {
			signedCommit(t, r, trusted, "to tamper", map[string]string{"groups/g.yaml": groupFile("d")})
			return tamper(t, r)
		}, "signature not valid for the keyring"},
	} {
		h := c.make()
		_, err := g.Once(ctx)
		if err == nil || !strings.Contains(err.Error(), h) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s commit %s: %v; want an error naming it and %q", c.name, h, err, c.want)
		}
		// Nothing unverified becomes the kept revision.
		if rev, err := g.local(); err != nil || rev.ID != good {
			t.Errorf("%s: local head %s %v, want still %s", c.name, rev.ID, err, good)
		}
	}
	fixed := signedCommit(t, r, trusted, "fixed", map[string]string{"groups/g.yaml": groupFile("e")})
	if rev, err := g.Once(ctx); err != nil || rev.ID != fixed {
		t.Errorf("signed fix: %s %v", rev.ID, err)
	}
}

func TestNewVerifierRejectsBadKeyrings(t *testing.T) {
	for _, kr := range [][]byte{nil, []byte("not a keyring"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n")} {
		if _, err := NewVerifier(kr, VerifyHead); err == nil {
			t.Errorf("keyring %q accepted", kr)
		}
	}
	if _, err := NewVerifier(armoredPublic(t, newKey(t, "k")), "sometimes"); err == nil {
		t.Error("bad mode accepted")
	}
}

// --verify-mode tags serves a ref only as an annotated tag signed by the
// keyring.
func TestVerifyTags(t *testing.T) {
	trusted, stranger := newKey(t, "trusted"), newKey(t, "stranger")
	v, err := NewVerifier(armoredPublic(t, trusted), VerifyTags)
	if err != nil {
		t.Fatal(err)
	}
	r := gittest.New(t)
	signedCommit(t, r, nil, "release", map[string]string{"groups/g.yaml": groupFile("a")})
	repo, err := git.PlainOpen(r.Work)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := repo.Head()
	tagger := &object.Signature{Name: "tester", Email: "t@pxeops.invalid", When: time.Now()}
	for name, key := range map[string]*openpgp.Entity{"v1-trusted": trusted, "v1-stranger": stranger, "v1-unsigned": nil} {
		if _, err := repo.CreateTag(name, head.Hash(), &git.CreateTagOptions{Tagger: tagger, Message: name, SignKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	r.Git("tag", "v1-light")
	r.Git("push", "-q", "origin", "--tags")
	for ref, want := range map[string]string{
		"v1-trusted":  "",
		"v1-stranger": "signature not valid for the keyring",
		"v1-unsigned": "is not signed",
		"v1-light":    "is not an annotated tag",
		"main":        "is not an annotated tag",
	} {
		g := newGit(t, r.FileURL(), t.TempDir(), func(o *GitOptions) { o.Ref, o.Verify = ref, v })
		_, err := g.Once(context.Background())
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", ref, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", ref, err, want)
		}
	}
}
