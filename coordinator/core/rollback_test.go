package core

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
)

// TestStatusStateVersion: the status names the store's state version, which grows with
// every change and stays across a restart.
func TestStatusStateVersion(t *testing.T) {
	f := newFixture(t)
	before := f.c.Status()
	if before.StateVersion == 0 || len(before.StateHash) != 64 {
		t.Fatalf("status state version %d hash %q; want a version and a 64-digit hash", before.StateVersion, before.StateHash)
	}
	f.setManifest("", testManifest(t, nil))
	after := f.c.Status()
	if after.StateVersion <= before.StateVersion || after.StateHash == before.StateHash {
		t.Errorf("after a manifest was set: state version %d, before %d; want it higher, with a new hash", after.StateVersion, before.StateVersion)
	}
	// Activations of unlimited workloads with derived secrets change nothing stored.
	f.mustActivate("web", "a")
	if got := f.c.Status().StateVersion; got != after.StateVersion {
		t.Errorf("an activation moved the state version from %d to %d", after.StateVersion, got)
	}
	f.reopen()
	if got := f.c.Status().StateVersion; got <= after.StateVersion {
		t.Errorf("after a restart (which the audit log records): state version %d, want above %d", got, after.StateVersion)
	}
}

// TestRolledBackStateRefused: a Coordinator's state.db copied before the first manifest and
// put back after it is refused: otherwise the host could set a manifest of its own (trust on
// first use again), or undo a limit's count, a removed user or a raised min_isvsvn.
func TestRolledBackStateRefused(t *testing.T) {
	f := newFixture(t)
	f.db.Close()
	path := filepath.Join(f.dir, "state", store.StateFile)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.open(true)
	f.setManifest("", testManifest(t, nil))
	reached := f.c.Status().StateVersion
	f.db.Close()
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewSimulated(filepath.Join(f.dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(filepath.Join(f.dir, "state"), sealer, store.Options{})
	if !errors.Is(err, store.ErrRolledBack) || !strings.Contains(err.Error(), "but this store reached version") {
		t.Fatalf("opening the older state.db: %v; want ErrRolledBack", err)
	}
	t.Logf("refused: %v (newest version %d)", err, reached)
}
