// Package secureboot answers one question for pxeops: would a Secure Boot
// firmware whose db holds these certificates run this PE image? It reads
// the image's Authenticode signatures with github.com/foxboron/go-uefi and
// checks them the way EDK2 does (the db certificate may be the signer or
// any certificate above it in the chain the signature carries; validity
// dates are not checked, as firmware has no trusted clock), closing what
// go-uefi leaves open (see verifySigner).
package secureboot

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/foxboron/go-uefi/authenticode"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pxeops/pxeops/internal/safefile"
)

// MaxImage caps the images checked: go-uefi reads an image into memory
// (about twice its size) to hash it. Kernels with an embedded initramfs
// reach tens of MiB; nothing a firmware loads over the network is near.
const MaxImage = 256 << 20

// MaxDB caps the certificate file, like every file named by a flag.
const MaxDB = 1 << 20

// maxChain bounds the walk from the signer up to a db certificate.
const maxChain = 8

// Errors a caller may tell apart; each is wrapped with the details.
var (
	ErrNotPE        = errors.New("not a PE image")
	ErrUnsigned     = errors.New("has no Authenticode signature")
	ErrUntrusted    = errors.New("not signed by a certificate of the db")
	ErrBadSignature = errors.New("its signature does not match it")
)

// DB is the operator's Secure Boot db: the certificates the firmware trusts.
type DB struct {
	certs []*x509.Certificate
}

// ParseDB reads one or more PEM CERTIFICATE blocks; anything else in the
// data (comments, other block types such as a key) is refused, so a
// private key pasted by mistake is an error rather than ignored.
func ParseDB(data []byte) (*DB, error) {
	db := &DB{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM %q block: want only CERTIFICATE blocks", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(db.certs)+1, err)
		}
		db.certs = append(db.certs, c)
	}
	if len(db.certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("text after the last PEM certificate that is not PEM")
	}
	return db, nil
}

// LoadDB reads the certificates of the regular file name.
func LoadDB(name string) (*DB, error) {
	data, err := safefile.ReadFile(name, MaxDB)
	if err != nil {
		return nil, err
	}
	return ParseDB(data)
}

// Subjects names the db's certificates, for logs.
func (db *DB) Subjects() []string {
	var s []string
	for _, c := range db.certs {
		s = append(s, c.Subject.String())
	}
	return s
}

// VerifyFile checks the regular file name; errors name it.
func (db *DB) VerifyFile(name string) (*x509.Certificate, error) {
	f, err := safefile.Open(name)
	if err != nil {
		return nil, err
	}
	return db.verifyOpen(f, name)
}

// VerifyFileIn checks the regular file name inside root, confined as
// root.Open is (what the servers serve from that directory).
func (db *DB) VerifyFileIn(root *os.Root, name string) (*x509.Certificate, error) {
	f, err := safefile.OpenIn(root, name)
	if err != nil {
		return nil, err
	}
	return db.verifyOpen(f, name)
}

func (db *DB) verifyOpen(f *os.File, name string) (*x509.Certificate, error) {
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > MaxImage {
		return nil, fmt.Errorf("%s: %w: %d bytes, over the %d-byte limit", name, safefile.ErrTooLarge, info.Size(), MaxImage)
	}
	// A section reader fixes the size: a file that grows while read is
	// checked as it was at the stat.
	signer, err := db.Verify(io.NewSectionReader(f, 0, info.Size()), info.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return signer, nil
}

// Verify checks the image of size bytes in r and returns the certificate
// that signed it. The image is trusted when one of its signatures is
// valid and its signer is a db certificate or chains up to one through
// the certificates the signature carries.
func (db *DB) Verify(r io.ReaderAt, size int64) (signer *x509.Certificate, err error) {
	if size > MaxImage {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", safefile.ErrTooLarge, size, MaxImage)
	}
	if err := checkHeaders(r, size); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPE, err)
	}
	// go-uefi's parser trusts the headers' offsets and sizes; what
	// checkHeaders does not catch must not take the server down.
	defer func() {
		if p := recover(); p != nil {
			signer, err = nil, fmt.Errorf("%w: malformed headers (%v)", ErrNotPE, p)
		}
	}()
	img, err := authenticode.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPE, err)
	}
	sigs, err := img.Signatures()
	if err != nil {
		return nil, fmt.Errorf("%w: its certificate table: %v", ErrBadSignature, err)
	}
	if len(sigs) == 0 {
		return nil, ErrUnsigned
	}
	digest := img.Hash(crypto.SHA256) // over the Authenticode ranges
	var others []string
	var firstErr error
	for i, sig := range sigs {
		s, err := db.verifySigner(sig.Certificate, digest, img.HashContent.Bytes())
		if err == nil {
			return s, nil
		}
		var u *untrustedError
		if errors.As(err, &u) {
			others = append(others, u.subject)
			continue
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("signature %d: %w", i+1, err)
		}
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("%w: signed by %s, which neither is nor chains to a db certificate (%s)", ErrUntrusted,
			strings.Join(others, "; "), strings.Join(db.Subjects(), "; "))
	}
	return nil, firstErr
}

type untrustedError struct{ subject string }

func (e *untrustedError) Error() string { return "signed by " + e.subject }

// verifySigner checks one PKCS#7 signature over an image whose
// Authenticode digest is digest (of the bytes hashed). go-uefi's Authenticode.Verify compares
// the SpcIndirectDataContent's digest with the image and the signer's
// signature over the authenticated attributes, but not the attributes'
// messageDigest with the SpcIndirectDataContent: without that check any
// signature of a trusted key could be moved onto another image by
// rewriting the digest inside it. It also only matches the signer by
// issuer and serial against the certificate it is given, so a db CA
// would never match; the chain walk is ours.
func (db *DB) verifySigner(der, digest, hashed []byte) (*x509.Certificate, error) {
	auth, err := authenticode.ParseAuthenticode(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(auth.Pkcs.SignerInfo) != 1 {
		return nil, fmt.Errorf("%w: %d signers, want 1 (Authenticode has exactly one)", ErrBadSignature, len(auth.Pkcs.SignerInfo))
	}
	si := auth.Pkcs.SignerInfo[0]
	if si.AuthenticatedAttributes == nil || si.IssuerAndSerialnumber == nil {
		return nil, fmt.Errorf("%w: no authenticated attributes", ErrBadSignature)
	}
	content := cryptobyte.String(auth.Pkcs.ContentInfo)
	var inner cryptobyte.String
	if !content.ReadASN1(&inner, asn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: malformed SpcIndirectDataContent", ErrBadSignature)
	}
	if sum := sha256.Sum256(inner); !bytes.Equal(si.AuthenticatedAttributes.MessageDigest, sum[:]) {
		return nil, fmt.Errorf("%w: the signed attributes' digest is not the signed content's", ErrBadSignature)
	}
	if !bytes.Equal(auth.Digest, digest) {
		return nil, fmt.Errorf("%w: the image's digest is not the signed one (changed after signing?)", ErrBadSignature)
	}
	var leaf *x509.Certificate
	for _, c := range auth.Pkcs.Certs {
		if bytes.Equal(c.RawIssuer, si.IssuerAndSerialnumber.RawIssuer) && c.SerialNumber.Cmp(si.IssuerAndSerialnumber.SerialNumber) == 0 {
			leaf = c
			break
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("%w: the signer's certificate is not in the signature", ErrBadSignature)
	}
	// Authenticode.Verify re-checks the image digest, then the signature
	// over the attributes with leaf's key.
	if ok, err := auth.Verify(leaf, hashed); err != nil || !ok {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, cmpErr(err, "rejected"))
	}
	if db.trusts(leaf, auth.Pkcs.Certs) {
		return leaf, nil
	}
	return nil, &untrustedError{subject: describe(leaf)}
}

func cmpErr(err error, fallback string) string {
	if err != nil {
		return err.Error()
	}
	return fallback
}

// trusts walks from c up through the signature's certificates: trusted
// once a certificate is in the db or signed by one (EDK2 lets any
// certificate of the chain be the db's, and ignores dates).
func (db *DB) trusts(c *x509.Certificate, pool []*x509.Certificate) bool {
	for range maxChain {
		for _, d := range db.certs {
			if c.Equal(d) || (bytes.Equal(c.RawIssuer, d.RawSubject) && c.CheckSignatureFrom(d) == nil) {
				return true
			}
		}
		var parent *x509.Certificate
		for _, p := range pool {
			if !p.Equal(c) && bytes.Equal(c.RawIssuer, p.RawSubject) && c.CheckSignatureFrom(p) == nil {
				parent = p
				break
			}
		}
		if parent == nil {
			return false
		}
		c = parent
	}
	return false
}

func describe(c *x509.Certificate) string {
	s := c.Subject.String()
	if s == "" {
		s = "a certificate without a subject"
	}
	if c.Issuer.String() != c.Subject.String() {
		s += " (issued by " + c.Issuer.String() + ")"
	}
	return s
}
