package core

import (
	"testing"
	"time"

	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/store"
)

// TestPendingExpiryAudited: an update that lapses is withdrawn by the Coordinator on its own
// and recorded as a cancel with reason "expired"; so is one a new proposal replaces.
func TestPendingExpiryAudited(t *testing.T) {
	f := newGovFixture(t, 2)
	p := f.propose("ann", govManifest(t, 2, nil))
	if err := f.c.expirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.pending() == nil {
		t.Fatal("a live update was withdrawn")
	}
	f.now = f.now.Add(time.Hour)
	if err := f.c.expirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	var stored *pendingRecord
	if err := f.db.View(t.Context(), func(tx *store.Tx) error {
		var err error
		stored, err = loadPending(tx)
		return err
	}); err != nil || stored != nil {
		t.Fatalf("the expired update is still stored: %+v, %v", stored, err)
	}
	q := f.propose("ben", govManifest(t, 2, nil))
	f.now = f.now.Add(2 * time.Hour)
	f.propose("ann", govManifest(t, 2, nil)) // replaces the expired q
	entries, _ := f.export(nil)
	var expired []string
	for _, e := range entries {
		if e.Kind == audit.KindManifestCancel && e.Fields["reason"] == "expired" && e.Actor == actorCoordinator {
			expired = append(expired, e.Fields["proposal"])
		}
	}
	if len(expired) != 2 || expired[0] != p.ID || expired[1] != q.ID {
		t.Errorf("expiries in the audit log: %v, want [%s %s]", expired, p.ID, q.ID)
	}
}
