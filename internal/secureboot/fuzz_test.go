package secureboot

import (
	"bytes"
	"os"
	"testing"

	"github.com/foxboron/go-uefi/authenticode"
)

// FuzzVerify feeds the PE and signature parsing arbitrary images. Seeds
// are real: Debian's snponly.efi unsigned, signed (by go-uefi here, so the
// fuzzer needs no sbsign), and its headers alone. Whatever the input,
// Verify must return, not panic, and trust nothing the test's db did not
// sign (the fuzzer cannot forge RSA).
func FuzzVerify(f *testing.F) {
	kp := newKeyPair(&testing.T{}, "pxeops fuzz", nil, false)
	d, err := ParseDB(kp.certPEM)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("MZ"))
	if unsigned, err := os.ReadFile(snponly); err == nil {
		img, err := authenticode.Parse(bytes.NewReader(unsigned))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := img.Sign(kp.key, kp.cert); err != nil {
			f.Fatal(err)
		}
		signed := img.Bytes()
		if _, err := d.Verify(bytes.NewReader(signed), int64(len(signed))); err != nil {
			f.Fatalf("the signed seed does not verify: %v", err)
		}
		f.Add(unsigned)
		f.Add(signed)
		f.Add(unsigned[:1024])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		signer, err := d.Verify(bytes.NewReader(data), int64(len(data)))
		if err == nil && (signer == nil || !signer.Equal(kp.cert)) {
			t.Fatalf("trusted, signer %v", signer)
		}
	})
}
