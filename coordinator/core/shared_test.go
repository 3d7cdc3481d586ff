package core

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
)

// sharedRemote is a store.Remote in memory with the Kubernetes one's compare-and-swap (package
// store/kubestate is tested against a real API server); down makes it fail as an API server
// that does not answer.
type sharedRemote struct {
	mu   sync.Mutex
	cur  *store.RemoteState
	rev  int
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (m *sharedRemote) Load(_ context.Context, last *store.RemoteState) (*store.RemoteState, error) {
	if m.down.Load() {
		return nil, errors.Join(store.ErrUnavailable, errDown)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if last != nil && m.cur != nil && last.Rev == m.cur.Rev {
		return last, nil
	}
	return m.cur, nil
}

func (m *sharedRemote) Commit(_ context.Context, base, next *store.RemoteState) (*store.RemoteState, error) {
	if m.down.Load() {
		return nil, errors.Join(store.ErrUnavailable, errDown)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if (base == nil) != (m.cur == nil) || base != nil && base.Rev != m.cur.Rev {
		return nil, store.ErrConflict
	}
	m.rev++
	st := *next
	st.Rev = strconv.Itoa(m.rev)
	m.cur = &st
	return &st, nil
}

// sharedReplicas opens n Cores on one shared state, as replicas with copies of the first
// one's data key, seal key and record of the newest version seen.
func sharedReplicas(t *testing.T, r store.Remote, n int) []*fixture {
	t.Helper()
	var out []*fixture
	for i := range n {
		f := &fixture{t: t, dir: t.TempDir(), now: time.Now()}
		if i > 0 {
			for _, name := range []string{"seal.key", filepath.Join("state", store.KeyFile), filepath.Join("state", store.VersionFile)} {
				raw, err := os.ReadFile(filepath.Join(out[0].dir, name))
				if err != nil {
					t.Fatal(err)
				}
				os.MkdirAll(filepath.Join(f.dir, "state"), 0o700)
				if err := os.WriteFile(filepath.Join(f.dir, name), raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		sealer, err := seal.NewSimulated(filepath.Join(f.dir, "seal.key"))
		if err != nil {
			t.Fatal(err)
		}
		f.db, err = store.OpenRemote(t.Context(), filepath.Join(f.dir, "state"), sealer, r, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.db.Close() })
		col, err := verify.LoadCollateral(platform.CollateralDir())
		if err != nil {
			t.Fatal(err)
		}
		f.reg, f.logs = prometheus.NewRegistry(), &logbuf.Buffer{}
		f.c, err = New(t.Context(), Config{
			Store:      f.db,
			Verifier:   attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
			Issuer:     &attest.SimIssuer{Platform: platform, Body: attest.SimEnclaveBody(sha256.Sum256([]byte("coordinator")), attest.SimCoordinatorSigner, 1, 1)},
			Simulation: true,
		}, WithLogger(slog.New(slog.NewJSONHandler(f.logs, nil))), WithRegisterer(f.reg), WithClock(func() time.Time { return f.now }))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func (f *fixture) refresh() {
	f.t.Helper()
	if err := f.c.Refresh(f.t.Context()); err != nil {
		f.t.Fatalf("Refresh: %v", err)
	}
}

func TestSharedReplicas(t *testing.T) {
	r := &sharedRemote{}
	fs := sharedReplicas(t, r, 2)
	a, b := fs[0], fs[1]
	if !a.c.Root().Equal(b.c.Root()) {
		t.Fatal("two replicas of one shared state have different deployment roots")
	}
	a.setManifest("", testManifest(t, nil))
	b.refresh()
	if v := b.c.ManifestVersion(); v != 1 {
		t.Fatalf("replica b serves manifest version %d after a set it on a, want 1", v)
	}

	// A secret set on one replica is read on the other at once.
	if err := a.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("from-a")}); err != nil {
		t.Fatal(err)
	}
	b.refresh()
	got, err := b.c.Secrets(t.Context(), as(t, "reader"), []string{"upload"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got["upload"].Value) != "from-a" {
		t.Fatalf("replica b reads upload = %q, want the value set on a", got["upload"].Value)
	}

	// The limit is shared: one activation of "limited" in all.
	a.mustActivate("limited", "i1")
	b.refresh()
	_, err = b.activate(newRequest(t, "limited", "i2", goodBody()))
	wantError(t, err, api.CodeActivationLimit)

	// Unlimited activations counted on each replica add up in the state.
	a.mustActivate("exact", "x1")
	b.mustActivate("exact", "x2")
	b.mustActivate("exact", "x3")
	for _, f := range fs {
		if err := f.c.flushCounts(t.Context(), false); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range fs {
		if n := f.c.Status().Activations["exact"]; n != 3 {
			t.Errorf("replica %d reports %d activations of exact, want 3", i, n)
		}
	}

	// Two replicas updating the manifest at once: one wins, the other is told.
	v2 := testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["new"] = map[string]any{"type": "symmetric-key", "size": 128}
	})
	a.refresh()
	b.refresh()
	if _, err := a.c.SetManifest(t.Context(), as(t, "admin"), v2); err != nil {
		t.Fatal(err)
	}
	_, err = b.c.SetManifest(t.Context(), as(t, "admin"), v2)
	wantError(t, err, api.CodeConflict, "the manifest changed")
	b.refresh()
	if v := b.c.ManifestVersion(); v != 2 {
		t.Fatalf("replica b serves manifest version %d, want 2", v)
	}

	// The API server down: NOT_READY, which clients retry.
	r.down.Store(true)
	wantError(t, b.c.Refresh(t.Context()), api.CodeNotReady, "unavailable; retry")
	r.down.Store(false)
	b.refresh()
}
