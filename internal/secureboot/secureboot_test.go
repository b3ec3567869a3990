package secureboot

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foxboron/go-uefi/authenticode"

	"github.com/pxeops/pxeops/internal/safefile"
)

// snponly is a real EFI application: Debian's iPXE (package ipxe).
const snponly = "/usr/lib/ipxe/snponly.efi"

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed; .ci/run installs sbsigntool and osslsigncode", tool)
		}
	}
	if _, err := os.Stat(snponly); err != nil {
		t.Skipf("%s missing; .ci/run installs ipxe", snponly)
	}
}

// keyPair is a certificate and its RSA key, written as PEM files for
// sbsign.
type keyPair struct {
	cert           *x509.Certificate
	key            *rsa.PrivateKey
	certPEM        []byte
	certFile, key_ string
}

// newKeyPair makes a certificate for cn, self-signed when parent is nil;
// isCA marks it a CA (which a leaf's issuer must be).
func newKeyPair(t *testing.T, cn string, parent *keyPair, isCA bool) *keyPair {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"pxeops test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: isCA,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	kp := &keyPair{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		certFile: filepath.Join(dir, "cert.pem"), key_: filepath.Join(dir, "key.pem")}
	write(t, kp.certFile, kp.certPEM)
	write(t, kp.key_, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	return kp
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func db(t *testing.T, kps ...*keyPair) *DB {
	t.Helper()
	var all []byte
	for _, kp := range kps {
		all = append(all, kp.certPEM...)
	}
	d, err := ParseDB(all)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sbsign signs a copy of snponly.efi with kp and returns its path.
func sbsign(t *testing.T, kp *keyPair) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "signed.efi")
	if b, err := exec.Command("sbsign", "--key", kp.key_, "--cert", kp.certFile, "--output", out, snponly).CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, b)
	}
	return out
}

// peers asks sbverify and osslsigncode whether file verifies against
// certFile, the real tools the firmware's rule is checked against.
func peers(t *testing.T, certFile, file string) (sbverify, osslsigncode bool) {
	t.Helper()
	sbverify = exec.Command("sbverify", "--cert", certFile, file).Run() == nil
	osslsigncode = exec.Command("osslsigncode", "verify", "-CAfile", certFile, "-in", file).Run() == nil
	return sbverify, osslsigncode
}

func TestSignedBy(t *testing.T) {
	needTools(t, "sbsign", "sbverify", "osslsigncode")
	self := newKeyPair(t, "pxeops self-signed", nil, false)
	ca := newKeyPair(t, "pxeops test CA", nil, true)
	leaf := newKeyPair(t, "pxeops leaf", ca, false)
	other := newKeyPair(t, "somebody else", nil, true)
	bySelf, byLeaf := sbsign(t, self), sbsign(t, leaf)

	for _, tc := range []struct {
		name  string
		file  string
		db    *keyPair
		trust bool
	}{
		{"self-signed, its own cert", bySelf, self, true},
		{"self-signed, another cert", bySelf, other, false},
		{"leaf, the CA in the db", byLeaf, ca, true},
		{"leaf, the leaf in the db", byLeaf, leaf, true},
		{"leaf, another CA", byLeaf, other, false},
		{"self-signed, the CA", bySelf, ca, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := db(t, tc.db).VerifyFile(tc.file)
			sbv, ossl := peers(t, tc.db.certFile, tc.file)
			t.Logf("pxeops: %v; sbverify: %v; osslsigncode: %v", err, sbv, ossl)
			if sbv != tc.trust {
				t.Errorf("sbverify says %v, the test expects %v: the test's premise is wrong", sbv, tc.trust)
			}
			if tc.trust {
				if err != nil || signer == nil {
					t.Fatalf("VerifyFile = %v, want trusted", err)
				}
				return
			}
			if !errors.Is(err, ErrUntrusted) {
				t.Fatalf("VerifyFile = %v, want ErrUntrusted", err)
			}
			for _, want := range []string{tc.file, "signed by CN=pxeops", tc.db.cert.Subject.CommonName} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	t.Run("one of several db certificates", func(t *testing.T) {
		if _, err := db(t, other, ca).VerifyFile(byLeaf); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSnakeoil signs with the key OVMF's snakeoil variable store trusts,
// decrypted first as the README says (the e2e lab boots with it).
func TestSnakeoil(t *testing.T) {
	needTools(t, "sbsign", "sbverify", "openssl")
	const key, cert = "/usr/share/ovmf/PkKek-1-snakeoil.key", "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	if _, err := os.Stat(key); err != nil {
		t.Skipf("%s missing; .ci/run installs ovmf", key)
	}
	dir := t.TempDir()
	plain, signed := filepath.Join(dir, "db.key"), filepath.Join(dir, "snponly.efi")
	if b, err := exec.Command("openssl", "rsa", "-in", key, "-passin", "pass:snakeoil", "-out", plain).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, b)
	}
	if b, err := exec.Command("sbsign", "--key", plain, "--cert", cert, "--output", signed, snponly).CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v %s", err, b)
	}
	d, err := LoadDB(cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.VerifyFile(signed); err != nil {
		t.Fatal(err)
	}
	if _, err := d.VerifyFile(snponly); !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), snponly) {
		t.Errorf("unsigned: %v, want ErrUnsigned naming the file", err)
	}
}

func TestRefused(t *testing.T) {
	needTools(t, "sbsign", "sbverify")
	kp := newKeyPair(t, "pxeops", nil, false)
	d := db(t, kp)
	signed := sbsign(t, kp)
	orig, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	t.Run("not a PE", func(t *testing.T) {
		name := filepath.Join(dir, "text")
		write(t, name, []byte("#!ipxe\nboot\n"))
		if _, err := d.VerifyFile(name); !errors.Is(err, ErrNotPE) || !strings.Contains(err.Error(), name) {
			t.Errorf("%v, want ErrNotPE naming the file", err)
		}
	})
	t.Run("changed after signing", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[0x1000] ^= 1 // inside .text
		name := filepath.Join(dir, "changed.efi")
		write(t, name, b)
		if _, err := d.VerifyFile(name); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v, want ErrBadSignature", err)
		}
		if sbv, _ := peers(t, kp.certFile, name); sbv {
			t.Error("sbverify accepts it: the test did not change a hashed byte")
		}
	})
	t.Run("a trusted signature moved onto another image", func(t *testing.T) {
		// Change the code, then write the changed image's digest into the
		// signed SpcIndirectDataContent. The signer's signature covers the
		// attributes, whose messageDigest no longer matches that content:
		// go-uefi's own Verify does not look, the firmware does.
		b := bytes.Clone(orig)
		b[0x1000] ^= 1
		img, err := authenticode.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		old, err := authenticode.Parse(bytes.NewReader(orig))
		if err != nil {
			t.Fatal(err)
		}
		oldSum, newSum := old.Hash(crypto.SHA256), img.Hash(crypto.SHA256)
		if bytes.Count(b, oldSum) != 1 {
			t.Fatalf("the signed digest occurs %d times", bytes.Count(b, oldSum))
		}
		b = bytes.Replace(b, oldSum, newSum, 1)
		name := filepath.Join(dir, "forged.efi")
		write(t, name, b)
		forged, err := authenticode.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := forged.Verify(kp.cert); !ok {
			t.Logf("go-uefi's Verify refuses the forgery too (%v)", err)
		} else {
			t.Log("go-uefi's Verify accepts the forgery")
		}
		if _, err := d.VerifyFile(name); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v, want ErrBadSignature", err)
		}
		if sbv, _ := peers(t, kp.certFile, name); sbv {
			t.Error("sbverify accepts the forgery")
		}
	})
	t.Run("too large", func(t *testing.T) {
		name := filepath.Join(dir, "big.efi")
		write(t, name, orig)
		if err := os.Truncate(name, MaxImage+1); err != nil {
			t.Fatal(err)
		}
		if _, err := d.VerifyFile(name); !errors.Is(err, safefile.ErrTooLarge) || !strings.Contains(err.Error(), name) {
			t.Errorf("%v, want ErrTooLarge naming the file", err)
		}
	})
	t.Run("a named pipe is refused, not waited on", func(t *testing.T) {
		name := filepath.Join(dir, "fifo.efi")
		if err := syscall.Mkfifo(name, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := d.VerifyFile(name); !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("%v, want ErrNotRegular", err)
		}
	})
	t.Run("in a root, confined", func(t *testing.T) {
		root, err := os.OpenRoot(filepath.Dir(signed))
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		if _, err := d.VerifyFileIn(root, "signed.efi"); err != nil {
			t.Error(err)
		}
		if _, err := d.VerifyFileIn(root, "../"+filepath.Base(dir)+"/text"); err == nil {
			t.Error("a path out of the root was read")
		}
	})
}

func TestParseDB(t *testing.T) {
	kp := newKeyPair(t, "pxeops", nil, false)
	key := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(kp.key)})
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "no PEM certificate"},
		{"a key", string(kp.certPEM) + string(key), `"RSA PRIVATE KEY"`},
		{"junk after", string(kp.certPEM) + "junk", "not PEM"},
		{"bad DER", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 1"},
	} {
		if _, err := ParseDB([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	d, err := ParseDB(append(bytes.Clone(kp.certPEM), kp.certPEM...))
	if err != nil || len(d.Subjects()) != 2 {
		t.Errorf("two certificates: %v %v", d, err)
	}
}
