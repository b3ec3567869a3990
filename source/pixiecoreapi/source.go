package pixiecoreapi

import (
	"context"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/pxeops/pxeops/source"
	"github.com/pxeops/pxeops/source/static"
)

// Source is API mode as a tree source: each machine the API said to boot
// is a group selecting its MAC alone, with its own profile, so the
// servers answer exactly the machines the API boots (ProxyDHCP never
// answers another) through the one load, render and access path. Learn
// asks the API about a machine and emits a new revision when the set
// of answers changed.
type Source struct {
	client *Client
	name   string

	mu      sync.Mutex
	booted  map[string]Answer // by MAC; only Boot answers
	lastErr string
	pending chan source.Revision // holds the newest revision not yet emitted
}

// NewSource serves what client's API says.
func NewSource(client *Client) *Source {
	return &Source{client: client, name: client.base.String(), booted: map[string]Answer{}, pending: make(chan source.Revision, 1)}
}

// Learn asks the API about mac and updates the tree: a machine it boots
// is added or changed, one it no longer boots removed.
func (s *Source) Learn(ctx context.Context, mac string) Answer {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return Answer{Why: "not a MAC address"}
	}
	mac = hw.String()
	ans := s.client.Ask(ctx, mac)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.booted[mac]
	switch {
	case ans.Boot && (!had || !same(old, ans)):
		if !had && len(s.booted) >= maxCache {
			s.lastErr = "too many machines booted at once; not adding " + mac
			return Answer{Why: s.lastErr}
		}
		s.booted[mac] = ans
	case !ans.Boot && had:
		delete(s.booted, mac)
	default:
		return ans
	}
	s.emitLocked()
	return ans
}

func same(a, b Answer) bool {
	return a.Kernel == b.Kernel && slices.Equal(a.Initrds, b.Initrds) && slices.Equal(a.Args, b.Args)
}

// emitLocked replaces the pending revision with the current tree.
func (s *Source) emitLocked() {
	perMAC := make(map[string]static.Boot, len(s.booted))
	for mac, a := range s.booted {
		perMAC[mac] = static.Boot{Kernel: a.Kernel, Initrds: a.Initrds, Args: a.Args}
	}
	fsys, err := static.Machines(nil, perMAC)
	if err == nil {
		var src *static.Source
		if src, err = static.New(s.name, fsys); err == nil {
			rev := src.Revision()
			select {
			case <-s.pending:
			default:
			}
			s.pending <- rev
			return
		}
	}
	s.lastErr = err.Error()
}

// Run emits the (empty) first tree, then each new one, until ctx ends.
func (s *Source) Run(ctx context.Context, emit func(source.Revision)) error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.emitLocked()
	}
	s.mu.Unlock()
	for {
		select {
		case rev := <-s.pending:
			emit(rev)
		case <-ctx.Done():
			return nil
		}
	}
}

// State reports the API and how many machines it boots.
func (s *Source) State() source.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return source.State{Kind: "pixiecore-api", Location: s.name, Watched: len(s.booted), LastError: s.lastErr}
}

// Booted lists the MACs the API boots now, sorted.
func (s *Source) Booted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.booted))
}

// Asker returns what ProxyDHCP tells of each PXE client it sees
// (daemon.Config.Seen): the MAC is queued, without blocking, for one of
// workers goroutines to Learn until ctx ends; past queue MACs waiting,
// one is dropped (the machine asks again within seconds, and the
// client's cache and per-MAC sharing make repeats cheap).
func (s *Source) Asker(ctx context.Context, workers, queue int) func(mac string) {
	macs := make(chan string, queue)
	for range workers {
		go func() {
			for {
				select {
				case mac := <-macs:
					s.Learn(ctx, mac)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return func(mac string) {
		select {
		case macs <- mac:
		default:
		}
	}
}

// Trigger does nothing: machines are asked about when they boot.
func (s *Source) Trigger() {}
