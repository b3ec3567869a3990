// Package machinestate keeps what pxeops knows durably about machines
// beyond the repository: that a machine's installer reported completion
// (the state selector key matches it). It is an embedded bbolt database
// under --state-dir, with an in-memory copy that boot requests read
// without a lock or an allocation; a write returns only once bbolt's
// commit is on disk (fsync), so a kill -9 after it loses nothing.
package machinestate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// State is what the store records of one machine.
type State struct {
	// Installed says the machine's installer reported completion.
	Installed bool `json:"installed"`
	// At is when the report came.
	At time.Time `json:"at"`
	// Revision, Group and Profile are what the machine was served when
	// it reported: the revision, its group and the installer profile.
	Revision string `json:"revision,omitempty"`
	Group    string `json:"group,omitempty"`
	Profile  string `json:"profile,omitempty"`
}

// Bounds of the store: a fleet is far smaller; an endpoint anyone on the
// boot network may reach must not grow the file without end.
const (
	MaxMachines = 100_000
	MaxField    = 256 // bytes of Revision, Group, Profile
	maxValue    = 4 << 10
)

// OpenTimeout is how long Open waits for another process's lock on the
// file before it gives up.
const OpenTimeout = time.Second

// ErrFull means the store holds MaxMachines machines: a new one is not
// recorded until one is reset.
var ErrFull = fmt.Errorf("machine state store full: %d machines; reset some", MaxMachines)

var bucket = []byte("machines")

// Store is the machine state database. Its methods are safe for
// concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	max  int                              // MaxMachines; tests lower it
	mu   sync.Mutex                       // serialises writers, so each copy of cur starts from the last
	cur  atomic.Pointer[map[string]State] // immutable; replaced whole on every write
}

// Open opens (creating it when absent) the database at path and reads it
// into memory. Another process holding it (a second pxeops on the same
// state directory) is an error naming the file after OpenTimeout.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: OpenTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("machine state %s: locked by another process (is another pxeops serving this state directory?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("machine state %s: %w", path, err)
	}
	s := &Store{db: db, path: path, max: MaxMachines}
	all := map[string]State{}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(all) == MaxMachines {
				return fmt.Errorf("more than %d machines", MaxMachines)
			}
			st, err := decode(string(k), v)
			if err != nil {
				return err
			}
			all[string(k)] = st
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("machine state %s: %w", path, err)
	}
	s.cur.Store(&all)
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Get returns machine mac's state (mac in lowercase colon form, as
// boot requests normalise it). It takes no lock and does not allocate:
// it runs on every boot request.
func (s *Store) Get(mac string) (State, bool) {
	st, ok := (*s.cur.Load())[mac]
	return st, ok
}

// All returns every machine's state, keyed by MAC; a copy.
func (s *Store) All() map[string]State { return maps.Clone(*s.cur.Load()) }

// Set records machine mac's state. It returns once the write is on disk.
func (s *Store) Set(mac string, st State) error {
	if err := checkMAC(mac); err != nil {
		return err
	}
	if err := st.check(); err != nil {
		return err
	}
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.cur.Load()
	if _, ok := old[mac]; !ok && len(old) >= s.max {
		return ErrFull
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(mac), v) }); err != nil {
		return fmt.Errorf("machine state %s: %w", s.path, err)
	}
	next := make(map[string]State, len(old)+1)
	maps.Copy(next, old)
	next[mac] = st
	s.cur.Store(&next)
	return nil
}

// Reset forgets machine mac, so it boots as a machine never installed;
// it reports whether there was anything to forget.
func (s *Store) Reset(mac string) (bool, error) {
	if err := checkMAC(mac); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.cur.Load()
	if _, ok := old[mac]; !ok {
		return false, nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(mac)) }); err != nil {
		return false, fmt.Errorf("machine state %s: %w", s.path, err)
	}
	next := maps.Clone(old)
	delete(next, mac)
	s.cur.Store(&next)
	return true, nil
}

// Close closes the database; the store must not be used after.
func (s *Store) Close() error { return s.db.Close() }

// checkMAC accepts a MAC in the one form boot requests use: six
// lowercase hex pairs separated by colons.
func checkMAC(mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw.String() != mac {
		return fmt.Errorf("invalid MAC %.40q: want six lowercase hex pairs like 52:54:00:a1:9c:ae", mac)
	}
	return nil
}

func (st *State) check() error {
	for _, f := range []struct{ name, v string }{{"revision", st.Revision}, {"group", st.Group}, {"profile", st.Profile}} {
		if len(f.v) > MaxField {
			return fmt.Errorf("%s of %d bytes, at most %d", f.name, len(f.v), MaxField)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%s is not UTF-8", f.name)
		}
		for _, r := range f.v {
			if r < ' ' || r == 0x7f {
				return fmt.Errorf("%s has a control character", f.name)
			}
		}
	}
	return nil
}

// decode reads one stored entry, checked as Set checks what it writes.
func decode(mac string, v []byte) (State, error) {
	if err := checkMAC(mac); err != nil {
		return State{}, fmt.Errorf("entry %.40q: %w", mac, err)
	}
	if len(v) > maxValue {
		return State{}, fmt.Errorf("entry %s: %d bytes, at most %d", mac, len(v), maxValue)
	}
	var st State
	if err := json.Unmarshal(v, &st); err != nil {
		return State{}, fmt.Errorf("entry %s: %w", mac, err)
	}
	if err := st.check(); err != nil {
		return State{}, fmt.Errorf("entry %s: %w", mac, err)
	}
	return st, nil
}
