package updater

import (
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Primary key fingerprints of the release signing keys. Signing subkeys
// rotate under them; the primary key is what is pinned.
const (
	FlatcarFingerprint = "F88CFEDEFF29A5B4D9523864E25D9AED0593B34A"
	CoreOSFingerprint  = "04127D0BFABEC8871FFB2CCE50E0885593D2DCB4"
)

// builtinKeys holds the vendors' public keys, one armored file per OS.
//
//go:embed keys
var builtinKeys embed.FS

// maxSignature bounds a detached signature; real ones are under 1 KiB.
const maxSignature = 64 << 10

// Keyring verifies detached signatures against pinned primary keys.
// Only entities whose primary fingerprint is pinned are kept, so a
// signature by any other key is by an unknown issuer.
type Keyring struct {
	keys openpgp.EntityList
	// refresh, for a keyring fetched from the vendor, fetches it again
	// (at most once per Keyrings.Pause); nil for the others.
	refresh func(context.Context) (*Keyring, error)
}

// DefaultFingerprints are the keys pinned for an OS when pxeops.yaml
// names none.
func DefaultFingerprints(osName string) []string {
	if osName == "coreos" {
		return []string{CoreOSFingerprint}
	}
	return []string{FlatcarFingerprint}
}

// BuiltinKeyring returns the vendor key shipped with pxeops for osName:
// CoreOS's, frozen since CoreOS ended. Flatcar's is fetched
// (omaha.keyringURL) or the repository's (omaha.keyring).
func BuiltinKeyring(osName string) ([]byte, error) {
	data, err := builtinKeys.ReadFile("keys/" + osName + ".asc")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pxeops ships no %s signing key: set pxeops.yaml omaha.keyringURL to where the vendor publishes it, or add it to the repository and name it in omaha.keyring", osName)
	}
	return data, err
}

// NewKeyring reads an armored or binary keyring and keeps the entities
// whose primary fingerprint is in pinned (hex, any case).
func NewKeyring(data []byte, pinned []string) (*Keyring, error) {
	var list openpgp.EntityList
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		list, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		list, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	k := &Keyring{}
	for _, e := range list {
		fp := fingerprint(e.PrimaryKey)
		for _, p := range pinned {
			if strings.EqualFold(p, fp) {
				k.keys = append(k.keys, e)
			}
		}
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("the keyring holds none of the pinned keys (%s)", strings.Join(pinned, ", "))
	}
	return k, nil
}

// Signer is who made a good signature.
type Signer struct {
	Primary string // primary key fingerprint, pinned
	KeyID   string // the (sub)key that signed, 16 hex digits
}

// Verify checks sig, binary or armored, over signed. The signing key must
// have been valid when it signed: a subkey that has expired since still
// verifies the releases it signed, which is how vendors rotate them. A
// fetched vendor keyring that lacks the signature's issuer is fetched
// again first, as the vendor may have added a subkey since; whatever it
// holds, only pinned primaries and their subkeys ever verify.
func (k *Keyring) Verify(ctx context.Context, signed io.Reader, sig []byte) (Signer, error) {
	if len(sig) > maxSignature {
		return Signer{}, fmt.Errorf("signature larger than %d bytes", maxSignature)
	}
	keys := k.keys
	var refreshErr error
	if id, ok := issuerID(sig); ok && k.refresh != nil && len(keys.KeysById(id)) == 0 {
		fresh, err := k.refresh(ctx)
		if fresh != nil {
			keys = fresh.keys
		}
		refreshErr = err
	}
	body := io.Reader(bytes.NewReader(sig))
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN")) {
		block, err := armor.Decode(bytes.NewReader(sig))
		if err != nil {
			return Signer{}, fmt.Errorf("armored signature: %w", err)
		}
		if block.Type != openpgp.SignatureType {
			return Signer{}, fmt.Errorf("armored block is %q, not a signature", block.Type)
		}
		body = block.Body
	}
	s, signer, err := openpgp.VerifyDetachedSignature(keys, signed, body, &packet.Config{})
	if err != nil {
		if err = explain(err, sig); refreshErr != nil {
			err = fmt.Errorf("%w (fetching the keyring again for it: %v)", err, refreshErr)
		}
		return Signer{}, err
	}
	keyID := "unknown"
	if s.IssuerKeyId != nil {
		keyID = fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return Signer{Primary: fingerprint(signer.PrimaryKey), KeyID: keyID}, nil
}

func explain(err error, sig []byte) error {
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fmt.Errorf("signed by a key that is not pinned (issuer %s)", issuer(sig))
	case errors.Is(err, pgperrors.ErrKeyExpired) || strings.Contains(err.Error(), "no valid signing or verifying key"):
		// go-crypto v2 reports a key that was not valid at the signature's
		// time with this structural error rather than ErrKeyExpired.
		return errors.New("signed by a key that was not valid when it signed (expired, revoked or not for signing)")
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return errors.New("signed by a revoked key")
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return errors.New("the signature has expired")
	}
	var se pgperrors.SignatureError
	if errors.As(err, &se) {
		return fmt.Errorf("bad signature: the file does not match it (%v)", err)
	}
	return fmt.Errorf("unreadable signature: %w", err)
}

// issuer names the key id a signature claims, for errors.
func issuer(sig []byte) string {
	if id, ok := issuerID(sig); ok {
		return fmt.Sprintf("%016X", id)
	}
	return "unknown"
}

// issuerID is the key id a signature claims: its issuer key id, or the
// one its issuer fingerprint implies.
func issuerID(sig []byte) (uint64, bool) {
	body := io.Reader(bytes.NewReader(sig))
	if block, err := armor.Decode(bytes.NewReader(sig)); err == nil {
		body = block.Body
	}
	p, err := packet.NewReader(body).Next()
	s, ok := p.(*packet.Signature)
	switch {
	case err != nil || !ok:
		return 0, false
	case s.IssuerKeyId != nil && *s.IssuerKeyId != 0:
		return *s.IssuerKeyId, true
	case len(s.IssuerFingerprint) == 20: // v4: the fingerprint's low 64 bits
		return binary.BigEndian.Uint64(s.IssuerFingerprint[12:]), true
	case len(s.IssuerFingerprint) == 32: // v6: its high 64 bits
		return binary.BigEndian.Uint64(s.IssuerFingerprint[:8]), true
	}
	return 0, false
}

func fingerprint(k *packet.PublicKey) string {
	return strings.ToUpper(fmt.Sprintf("%x", k.Fingerprint))
}
