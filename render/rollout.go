package render

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/pxeops/pxeops/schema"
)

// Rollout is a profile's image's rollout as it is served: the machines
// whose bucket is under Share boot Version, the others Pinned.
type Rollout struct {
	Image   string       // the image's id
	Pinned  string       // the image's version
	Version string       // the rollout's version
	Share   schema.Share // in hundredths of a percent, as the buckets
	prefix  string       // "<image>\n<version>\n": what RolloutBucket hashes before the MAC
}

// Buckets is how many buckets RolloutBucket spreads machines over: one
// per hundredth of a percent, so a share of n hundredths is n buckets.
const Buckets = int(schema.FullShare)

// RolloutBucket is machine mac's bucket, from 0 to Buckets-1, for the
// rollout of version of image imageID: the first four bytes of
//
//	SHA-256("<imageID>\n<version>\n<mac>")
//
// read big-endian, modulo 10000, with mac in ParseMAC's form (lowercase
// hex pairs and colons, e.g. 52:54:00:a1:9c:ae). It is fixed by design
// (not a per-process seeded hash) so every replica and reload, and every
// version of pxeops, puts a machine in the same bucket, and an operator
// can compute it with sha256sum (README, "Rollouts in stages"). The
// version is part of it so that each new rollout picks new canaries.
func RolloutBucket(imageID, version, mac string) int {
	return bucket(imageID+"\n"+version+"\n", mac)
}

// RolloutSide reports whether machine mac (ParseMAC's form) is on the
// rollout's side at share: its bucket is under share. A request without
// a MAC has no bucket: it is on the rollout's side only at 100%. Raising
// share only adds buckets, so a machine on the rollout's side stays there.
func RolloutSide(imageID, version, mac string, share schema.Share) bool {
	if share >= schema.FullShare || mac == "" {
		return share >= schema.FullShare
	}
	return RolloutBucket(imageID, version, mac) < int(share)
}

// bucket hashes prefix and mac without allocating when both fit the
// stack buffer, as they do for any real image id and version: it runs
// on every boot request of a profile with a rollout.
func bucket(prefix, mac string) int {
	var buf [160]byte
	b := append(append(buf[:0], prefix...), mac...)
	sum := sha256.Sum256(b)
	return int(binary.BigEndian.Uint32(sum[:4]) % uint32(Buckets))
}

// Has reports whether machine mac is on the rollout's side
// (RolloutSide, with the prefix built once per snapshot).
func (r *Rollout) Has(mac string) bool {
	switch {
	case r.Share >= schema.FullShare:
		return true
	case mac == "" || r.Share == 0:
		return false
	}
	return bucket(r.prefix, mac) < int(r.Share)
}

// Bucket is machine mac's bucket for this rollout (RolloutBucket).
func (r *Rollout) Bucket(mac string) int { return bucket(r.prefix, mac) }

// Rollout is the rollout of the profile's image, nil when it has none.
func (p *Profile) Rollout() *Rollout { return p.rollout }

// Boot is what machine mac (ParseMAC's form; "" when unknown) boots with
// this profile: the rollout's files when the image has a rollout and mac
// is on its side, else the profile's own (the image's version). It does
// not allocate; without a rollout it does not hash either.
func (p *Profile) Boot(mac string) *BootFiles {
	if p.rollout != nil && p.rollout.Has(mac) {
		return p.rolloutFiles
	}
	return &p.BootFiles
}

// side is the index of f in a group's per-side caches.
func (f *BootFiles) side() int {
	if f.OnRollout {
		return 1
	}
	return 0
}
