package core

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// fleetManifest is a deployment of one workload with three per-instance secrets; limit is its
// max_activations.
func fleetManifest(t testing.TB, limit int) []byte {
	return fmt.Appendf(nil, `{
  "packages": {"p": {"mrenclave": %q}},
  "workloads": {"fleet": {"package": "p", "max_activations": %d,
    "env": {"A": "{{.Secrets.a.Hex}}", "B": "{{.Secrets.b.Hex}}", "C": "{{.Secrets.c.Hex}}"}}},
  "secrets": {
    "a": {"type": "symmetric-key", "size": 256, "per_instance": true},
    "b": {"type": "symmetric-key", "size": 128, "per_instance": true},
    "c": {"type": "symmetric-key", "size": 512, "per_instance": true}
  }
}`, hex.EncodeToString(testMREnclave[:]), limit)
}

// activateInstances runs the storage half of n activations of workload fleet, one per
// instance, 16 at a time: what an activation stores does not depend on its quote.
func activateInstances(t testing.TB, c *Core, n int) {
	d := c.current()
	w := d.m.Workloads["fleet"]
	render := func(v map[string]manifest.SecretValue) (*manifest.Rendered, error) {
		if len(v) != 3 {
			return nil, fmt.Errorf("rendered with %d secrets, want 3", len(v))
		}
		return &manifest.Rendered{}, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if _, _, err := c.commitActivation(t.Context(), d, "fleet", w, fmt.Sprintf("instance-%06d", i), fmt.Appendf(nil, "key-%06d", i), render); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func stateSize(t testing.TB, f *fixture) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(f.dir, "state", store.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestStateSizePerInstance measures state.db after 10,000 instances of a workload with three
// per-instance symmetric secrets activated once each, unlimited and limited: under 1 MB, as
// nothing per instance is stored (see derive.go).
func TestStateSizePerInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 activations")
	}
	for _, limit := range []int{0, 100000} {
		t.Run(fmt.Sprintf("max_activations=%d", limit), func(t *testing.T) {
			f := newFixture(t)
			f.setManifest("", fleetManifest(t, limit))
			f.c.flushCounts(t.Context(), true)
			before := stateSize(t, f)
			const n = 10000
			activateInstances(t, f.c, n)
			if err := f.c.flushCounts(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			after := stateSize(t, f)
			t.Logf("state.db: %d bytes before, %d bytes after %d instances with 3 per-instance secrets (%d bytes per instance)",
				before, after, n, (after-before)/n)
			if after >= 1<<20 {
				t.Errorf("state.db is %d bytes after %d instances; want under 1 MiB", after, n)
			}
		})
	}
}
