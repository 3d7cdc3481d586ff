package core

import (
	"os"
	"testing"

	"github.com/cloister-dev/cloister/audit"
)

func recoveryKeys(t *testing.T, names ...string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for i, n := range names {
		file := []string{"x25519-a", "x25519-b", "rsa3072"}[i]
		b, err := os.ReadFile("../../manifest/testdata/keys/" + file + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

// TestRecoverySplit: the data key is split when the manifest first names holders, not again
// while they stay, again when the threshold changes, and the split is removed with recovery;
// each split and removal is in the audit log and the status.
func TestRecoverySplit(t *testing.T) {
	f := newFixture(t)
	withRecovery := func(k int, extra string) []byte {
		return testManifest(t, func(m map[string]any) {
			m["governance"] = map[string]any{"recovery": map[string]any{"threshold": k, "keys": recoveryKeys(t, "carol", "dave", "erin")}}
			if extra != "" {
				m["settings"] = map[string]any{"trust_domain": extra}
			}
		})
	}
	r1 := f.setManifest("", withRecovery(2, ""))
	if len(r1.RecoveryShares) != 3 || r1.RecoveryWarning != "" {
		t.Fatalf("first manifest: %d shares, warning %q", len(r1.RecoveryShares), r1.RecoveryWarning)
	}
	gen := r1.RecoveryShares[0].Generation
	if st := f.c.Status().Recovery; st == nil || st.Generation != gen || st.Threshold != 2 || len(st.Holders) != 3 {
		t.Fatalf("status recovery: %+v", st)
	}
	if r := f.setManifest("admin", withRecovery(2, "other.test")); len(r.RecoveryShares) != 0 {
		t.Errorf("an update that kept the holders split again")
	}
	r3 := f.setManifest("admin", withRecovery(3, ""))
	if len(r3.RecoveryShares) != 3 || r3.RecoveryShares[0].Generation == gen || r3.RecoveryShares[0].Threshold != 3 {
		t.Fatalf("new threshold: %+v", r3.RecoveryShares)
	}
	if r := f.setManifest("admin", testManifest(t, nil)); len(r.RecoveryShares) != 0 {
		t.Errorf("removing recovery handed out shares")
	}
	if st := f.c.Status().Recovery; st != nil {
		t.Errorf("status after recovery was removed: %+v", st)
	}
	entries, _ := f.export(nil)
	var events []string
	for _, e := range entries {
		if e.Kind == audit.KindRecovery {
			events = append(events, e.Fields["event"])
		}
	}
	if len(events) != 3 || events[0] != "split" || events[1] != "split" || events[2] != "removed" {
		t.Errorf("recovery entries: %v, want [split split removed]", events)
	}
}
