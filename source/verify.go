package source

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Verification modes.
const (
	VerifyHead = "head" // the commit itself must be signed
	VerifyTags = "tags" // the ref must be an annotated tag, signed
)

// VerifyError is a revision refused for its signature. It needs a human
// (a signed commit), not a retry or a new clone.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "not served: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Verifier checks OpenPGP signatures against a fixed keyring before a
// revision is served.
type Verifier struct {
	armored string
	mode    string
}

// NewVerifier reads an armored keyring; mode is VerifyHead or VerifyTags.
func NewVerifier(armoredKeyring []byte, mode string) (*Verifier, error) {
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredKeyring))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w (want an ASCII-armored public keyring: gpg --export --armor)", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("keyring holds no keys")
	}
	if mode != VerifyHead && mode != VerifyTags {
		return nil, fmt.Errorf("verify mode %q: use head or tags", mode)
	}
	return &Verifier{armored: string(armoredKeyring), mode: mode}, nil
}

// verify checks what ref hash h names; repo's lock held.
func (v *Verifier) verify(repo *git.Repository, h plumbing.Hash, commit *object.Commit) error {
	if v.mode == VerifyTags {
		tag, err := repo.TagObject(h)
		if err != nil {
			return fmt.Errorf("%s is not an annotated tag; --verify-mode tags serves only signed tags", h)
		}
		if tag.PGPSignature == "" {
			return fmt.Errorf("tag %s (%s) is not signed", tag.Name, h)
		}
		if _, err := tag.Verify(v.armored); err != nil {
			return fmt.Errorf("tag %s (%s): signature not valid for the keyring: %w", tag.Name, h, err)
		}
		return nil
	}
	if commit.PGPSignature == "" {
		return fmt.Errorf("commit %s is not signed; --verify-commits serves only commits signed by a key of the keyring", commit.Hash)
	}
	if _, err := commit.Verify(v.armored); err != nil {
		return fmt.Errorf("commit %s: signature not valid for the keyring: %w", commit.Hash, err)
	}
	return nil
}
