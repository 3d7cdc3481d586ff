package core

import (
	"bytes"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
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

// TestAuditRole: without an audit role every manifest user reads the log (as before the
// resource existed); once a role covers the audit log, only its holders may.
func TestAuditRole(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	var buf bytes.Buffer
	if _, err := f.c.ExportAudit(t.Context(), as(t, "nobody"), 1, &buf); err != nil {
		t.Fatalf("a user without roles, no audit role in the manifest: %v", err)
	}
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["roles"].(map[string]any)["auditor"] = map[string]any{"resource": "audit", "actions": []string{"read"}}
		m["users"].(map[string]any)["reader"].(map[string]any)["roles"] = []string{"reader", "auditor"}
	}))
	buf.Reset()
	_, err := f.c.ExportAudit(t.Context(), as(t, "nobody"), 1, &buf)
	wantError(t, err, api.CodeForbidden, `user "nobody" has no role that grants read on the audit log`)
	if buf.Len() != 0 {
		t.Errorf("a refused export wrote %d bytes", buf.Len())
	}
	if _, err := f.c.ExportAudit(t.Context(), as(t, "reader"), 1, &buf); err != nil {
		t.Fatalf("the auditor: %v", err)
	}
}
