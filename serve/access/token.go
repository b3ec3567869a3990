package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"net/netip"
	"sync"
	"time"
)

// TokenParam is the query parameter a token travels in.
const TokenParam = "pxeops.token"

// A token is base64url (no padding) of: version (1 byte), expiry (Unix
// seconds, 8 bytes big-endian), and the first 16 bytes of
// HMAC-SHA256(key, version | expiry | MAC | address | revision). The
// MAC, address and revision are not in it: the request supplies them,
// so a token copied to another address or machine fails the MAC.
const (
	tokenVersion = 1
	tokenRawLen  = 1 + 8 + 16
	// TokenLen is the length of every token Issue makes; anything else
	// is refused before it is decoded.
	TokenLen = (tokenRawLen*8 + 5) / 6
	macLen   = 16
)

// tokenEncoding is strict: the unused bits of the last character must be
// zero, so each token has one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// DefaultTokenTTL is how long a token lasts: from the script to the OS's
// config fetch is a kernel and initrd download and a boot.
const DefaultTokenTTL = 10 * time.Minute

// Tokens issues and checks tokens with one key. The key is the
// process's own (random at start, never stored), so a restart voids the
// tokens in flight: a machine whose config fetch fails then boots again.
type Tokens struct {
	ttl  time.Duration
	macs sync.Pool // of hash.Hash: HMAC-SHA256 with the key, reused (hmac.New costs allocations per request)
}

// NewTokens makes a token issuer; key must be at least 32 bytes (from
// crypto/rand), ttl positive.
func NewTokens(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("token key shorter than 32 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("token lifetime must be positive")
	}
	key = append([]byte(nil), key...)
	t := &Tokens{ttl: ttl}
	t.macs.New = func() any { return hmac.New(sha256.New, key) }
	return t, nil
}

// TTL is how long an issued token lasts.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue returns a token for mac at ip under revision, valid until now+TTL.
func (t *Tokens) Issue(mac string, ip netip.Addr, revision string, now time.Time) string {
	var raw [tokenRawLen]byte
	raw[0] = tokenVersion
	binary.BigEndian.PutUint64(raw[1:9], uint64(now.Add(t.ttl).Unix()))
	copy(raw[9:], t.sum(raw[:9], mac, ip, revision))
	return tokenEncoding.EncodeToString(raw[:])
}

// Verify checks tok against the request's MAC, address and revision:
// AllowToken, DenyExpiredToken, or DenyBadToken (malformed, another key,
// another machine, address or revision). Expiry is judged only once the
// MAC holds, so a forged token never learns more than "bad".
func (t *Tokens) Verify(tok, mac string, ip netip.Addr, revision string, now time.Time) Reason {
	if len(tok) != TokenLen {
		return DenyBadToken
	}
	var raw [tokenRawLen]byte
	if n, err := tokenEncoding.Decode(raw[:], []byte(tok)); err != nil || n != tokenRawLen || raw[0] != tokenVersion {
		return DenyBadToken
	}
	if !hmac.Equal(raw[9:], t.sum(raw[:9], mac, ip, revision)) {
		return DenyBadToken
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(raw[1:9])) {
		return DenyExpiredToken
	}
	return AllowToken
}

// sum is the token's MAC over its head and the request facts, each
// length-prefixed so no two sets of facts hash alike.
func (t *Tokens) sum(head []byte, mac string, ip netip.Addr, revision string) []byte {
	h := t.macs.Get().(hash.Hash)
	defer t.macs.Put(h)
	h.Reset()
	var addr []byte
	if ip = ip.Unmap(); ip.Is4() {
		a := ip.As4()
		addr = a[:]
	} else if ip.IsValid() {
		a := ip.As16()
		addr = a[:]
	}
	// One Write of the whole message: each is a call through an
	// interface, whose argument escapes.
	b := make([]byte, 0, len(head)+12+len(mac)+len(addr)+len(revision))
	b = append(b, head...)
	b = appendField(b, mac)
	b = appendField(b, string(addr))
	b = appendField(b, revision)
	h.Write(b)
	var sum [sha256.Size]byte
	return h.Sum(sum[:0])[:macLen]
}

func appendField(b []byte, f string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}
