package injector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/manifest"
)

// minRefresh bounds how often a workload missing from the cached manifest makes the webhook
// read it again: pods naming unknown workloads must not turn into a stream of quote
// verifications.
const minRefresh = time.Second

// errUnknownWorkload is returned by lookup for a workload the manifest lacks.
var errUnknownWorkload = errors.New("unknown workload")

// manifests reads the manifest from the Coordinator, verified by its quote, and caches it.
type manifests struct {
	addr   string
	expect client.Expect
	ttl    time.Duration
	now    func() time.Time
	onRead func(err error)

	// mu guards the fields below. It is held across a read from the Coordinator on purpose:
	// concurrent admissions wait for that one read (bounded by its 10 s timeout) instead of
	// each starting their own quote verification.
	mu      sync.Mutex
	m       *manifest.Manifest
	version int
	readAt  time.Time // when m was read; zero before the first read
	tried   time.Time // when the last read was tried
	lastErr error     // the last read's error, nil after a success
}

// lookup returns the manifest's workload name. A workload missing from a cached manifest, or a
// cache older than the TTL, reads the manifest again. An unreachable or unverifiable
// Coordinator is an error: the caller denies the pod.
func (s *manifests) lookup(ctx context.Context, name string) (*manifest.Manifest, manifest.Workload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	fresh := s.m != nil && now.Sub(s.readAt) < s.ttl
	if fresh {
		if w, ok := s.m.Workloads[name]; ok {
			return s.m, w, nil
		}
	}
	switch {
	case now.Sub(s.tried) >= minRefresh:
		s.tried = now
		if err := s.readLocked(ctx); err != nil {
			return nil, manifest.Workload{}, err
		}
	case !fresh && s.lastErr != nil:
		// The Coordinator failed less than minRefresh ago: do not queue every admission
		// behind another attempt.
		return nil, manifest.Workload{}, s.lastErr
	case !fresh:
		// Stale, but read less than minRefresh ago (a clock step): read again.
		s.tried = now
		if err := s.readLocked(ctx); err != nil {
			return nil, manifest.Workload{}, err
		}
	}
	if w, ok := s.m.Workloads[name]; ok {
		return s.m, w, nil
	}
	return s.m, manifest.Workload{}, errUnknownWorkload
}

// readLocked verifies the Coordinator and reads its manifest. On failure the cached manifest
// is dropped: it can no longer be vouched for after its TTL.
func (s *manifests) readLocked(ctx context.Context) error {
	err := s.read(ctx)
	s.lastErr = err
	if s.onRead != nil {
		s.onRead(err)
	}
	if err != nil {
		s.m = nil
	}
	return err
}

func (s *manifests) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := client.Verify(ctx, s.addr, s.expect)
	if err != nil {
		return fmt.Errorf("the Coordinator at %s could not be verified: %w", s.addr, err)
	}
	raw, version, err := client.New(s.addr, v.Root, client.WithTimeout(10*time.Second)).Manifest(ctx)
	if err != nil {
		return fmt.Errorf("read the manifest from the Coordinator at %s: %w", s.addr, err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return fmt.Errorf("the manifest of the Coordinator at %s (version %d): %w", s.addr, version, err)
	}
	s.m, s.version, s.readAt = m, version, s.now()
	return nil
}
