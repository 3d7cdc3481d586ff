package core

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/store"
)

// Recovery by key holders, while the Coordinator runs: the data key of the store is split among
// the holders that governance.recovery names, and the split's record is kept beside the sealed
// key (store.DB.SetRecovery), where a Coordinator that can no longer unseal finds it.
//
// A split is made after the manifest change that calls for it is committed: when the manifest
// in force names other holders, keys or threshold than the record beside the key (a new split,
// a new generation), or no recovery at all (the record is removed). The previous split stays
// valid until the new record is written; a crash in between leaves the old split in force,
// whose holders can still recover, and the next manifest change makes the new one. The
// share files go to whoever made the change (manifest set, the approval that applied an
// update, an SVN update): they are encrypted to their holders, so handing them to the caller
// gives the caller nothing.

// recoveryHolders returns the holders of m's recovery section in name order, with their
// PKIX DER keys, and the threshold; nil without recovery.
func recoveryHolders(m *manifest.Manifest) ([]recovery.HolderKey, int, error) {
	r := m.Governance.Recovery
	if r == nil {
		return nil, 0, nil
	}
	var out []recovery.HolderKey
	for _, name := range m.RecoveryHolders() {
		k, err := manifest.ParseRecoveryKey(r.Keys[name])
		if err != nil {
			return nil, 0, fmt.Errorf("recovery key of %q: %w", name, err)
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, 0, fmt.Errorf("recovery key of %q: %w", name, err)
		}
		out = append(out, recovery.HolderKey{Name: name, PublicKey: der})
	}
	return out, r.Threshold, nil
}

// loadRecord returns the recovery record beside the sealed key, or nil.
func loadRecord(db *store.DB) (*recovery.Record, error) {
	raw, err := db.Recovery()
	if err != nil || raw == nil {
		return nil, err
	}
	return recovery.ParseRecord(raw)
}

// syncRecovery makes the split in force match m, the manifest just committed, by user: it
// splits the data key again (returning the share files) when m's holders or threshold differ
// from the record's, removes the record when m has no recovery, and does nothing otherwise.
// Failures are returned as a warning for the caller's answer: the manifest change stands.
func (c *Core) syncRecovery(ctx context.Context, m *manifest.Manifest, user string) ([]*recovery.Share, string) {
	shares, err := c.resplit(ctx, m, user)
	if err != nil {
		c.log.Error("recovery split failed; the previous split stays in force", "error", err.Error())
		return nil, "the manifest applied, but splitting the data key among the recovery key holders failed (" + err.Error() + "); the previous split stays in force until a later manifest change succeeds"
	}
	return shares, ""
}

func (c *Core) resplit(ctx context.Context, m *manifest.Manifest, user string) ([]*recovery.Share, error) {
	holders, k, err := recoveryHolders(m)
	if err != nil {
		return nil, err
	}
	old, err := loadRecord(c.db)
	if err != nil {
		c.log.Warn("the recovery record beside the sealed key does not parse; splitting again", "error", err.Error())
		old = nil
	}
	dep := c.deploymentID()
	switch {
	case holders == nil && old == nil:
		return nil, nil
	case holders == nil:
		if err := c.db.SetRecovery(nil); err != nil {
			return nil, err
		}
		c.loadRecoveryStatus()
		c.log.Warn("recovery removed: the manifest names no recovery key holders; a Coordinator that cannot unseal its state can no longer be recovered")
		return nil, c.recordRecoveryEvent(ctx, user, map[string]string{"event": "removed", "generation": old.Generation})
	case old != nil && old.Deployment == dep && old.SameHolders(holders, k):
		return nil, nil
	}
	var (
		rec    *recovery.Record
		shares []*recovery.Share
	)
	err = c.db.WithDataKey(func(key []byte) error {
		var err error
		rec, shares, err = recovery.Split(key, dep, holders, k, c.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	// Logged first: a split in the log that a crash kept out of force is harmless (its shares
	// were never handed out); a split in force missing from the log would not be.
	fields := map[string]string{"event": "split", "generation": rec.Generation, "threshold": strconv.Itoa(k), "holders": strings.Join(rec.Names(), ",")}
	if old != nil {
		fields["replaces"] = old.Generation
	}
	if err := c.recordRecoveryEvent(ctx, user, fields); err != nil {
		return nil, err
	}
	if err := c.db.SetRecovery(raw); err != nil {
		return nil, err
	}
	c.loadRecoveryStatus()
	c.log.Info("data key split among the recovery key holders", "generation", rec.Generation, "threshold", k, "holders", rec.Names())
	return shares, nil
}

// recordRecoveryEvent writes a recovery entry of the audit log in a transaction of its own.
func (c *Core) recordRecoveryEvent(ctx context.Context, user string, fields map[string]string) error {
	if user == "" {
		user = actorAnonymous
	}
	return c.db.Update(ctx, func(tx *store.Tx) error {
		return c.record(tx, audit.KindRecovery, user, fields)
	})
}

// WithRecoveredRecord makes New check that rec, the split whose shares rebuilt the store's
// data key, is the split the recovered state asks for (see checkRecoveredRecord), before New
// writes anything: a refused recovery leaves no trace in the state it opened.
func WithRecoveredRecord(rec *recovery.Record) Option {
	return func(c *Core) {
		if rec == nil {
			rec = &recovery.Record{} // fail closed: checked, and refused
		}
		c.recovered = rec
	}
}

// checkRecoveredRecord refuses a recovery whose split is not the one the recovered state asks
// for: the record's deployment must be this state's deployment ID, and its holders, keys and
// threshold those of governance.recovery in the manifest in force. The record's MAC and the
// key opening the state prove only that whoever wrote the record knew the key; a host that
// built a state of its own under a key it chose (copying the victim's public manifest) and
// named itself holder passes both, and this check is what stops it. The Coordinator calls it
// on the recovered store (WithRecoveredRecord) before it records the recovery or seals the key.
//
// A crash between a manifest change that named other holders and its new split leaves a
// record that this refuses: such a state cannot be recovered (the warning of
// loadRecoveryStatus says so while the Coordinator runs).
func (c *Core) checkRecoveredRecord() error {
	rec := c.recovered
	if rec == nil {
		return nil // not a recovery
	}
	if dep := c.deploymentID(); rec.Deployment != dep {
		return errorf(api.CodeConflict, "the recovery record is for deployment %s, but the state the shares opened is deployment %s; the record beside the sealed key was replaced, and the recovery is refused", short(rec.Deployment), short(dep))
	}
	d := c.current()
	if d == nil {
		return errorf(api.CodeConflict, "the state the shares opened has no manifest, so it names no recovery key holders; the record beside the sealed key was not written by it, and the recovery is refused")
	}
	holders, k, err := recoveryHolders(d.m)
	if err != nil {
		return fmt.Errorf("the recovered manifest's recovery keys: %w", err)
	}
	if holders == nil || !rec.SameHolders(holders, k) {
		names := make([]string, len(holders))
		for i, h := range holders {
			names[i] = h.Name
		}
		return errorf(api.CodeConflict, "the recovery record splits among %v with threshold %d, but the manifest in force in the state the shares opened (version %d) names recovery key holders %v with threshold %d (same names and keys required); the record beside the sealed key is not the state's split, and the recovery is refused", rec.Names(), rec.Threshold, d.version, names, k)
	}
	return nil
}

// short abbreviates a deployment ID for messages.
func short(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

// RecordRecovery writes the audit entry of a completed recovery: the holders whose shares
// rebuilt the data key, the split, when recovery mode began and why. The Coordinator calls it
// on the recovered store before the data key is sealed again, so that a recovery in force is
// never missing from the log.
//
// It is idempotent for one completion: if sealing the key failed after the entry committed and
// the holders complete the same session again with the same shares, the log already holds that
// entry (behind the start entry of the retry) and none is added. A retry that differs (other
// holders, or a new recovery session after a restart) is recorded: the log then shows every
// completion that opened the state, and the last one is the one that sealed it.
func (c *Core) RecordRecovery(ctx context.Context, r RecoveryReport) error {
	fields := map[string]string{
		"event": "recovered", "generation": r.Generation, "holders": strings.Join(r.Holders, ","),
		"threshold": strconv.Itoa(r.Threshold), "reason": r.Reason, "recovery_started": r.Started.UTC().Format("2006-01-02T15:04:05Z"),
	}
	return c.db.Update(ctx, func(tx *store.Tx) error {
		done, err := c.recoveryRecorded(tx, fields)
		if err != nil || done {
			return err
		}
		return c.record(tx, audit.KindRecovery, actorCoordinator, fields)
	})
}

// recoveryRecorded reports whether the newest entries of the log, after any start entries,
// end with a recovery entry with exactly fields.
func (c *Core) recoveryRecorded(tx *store.Tx, fields map[string]string) (bool, error) {
	tip, err := c.readTip(tx)
	if err != nil {
		return false, err
	}
	for seq := tip.Seq; seq > 0 && tip.Seq-seq < 16; seq-- {
		b, err := readEntry(tx, tip, seq)
		if err != nil {
			return false, err
		}
		e, err := audit.ParseEntry(b)
		if err != nil {
			return false, fmt.Errorf("audit log entry %d: %w", seq, err)
		}
		switch {
		case e.Kind == audit.KindCoordinatorStart:
			continue
		case e.Kind == audit.KindRecovery && maps.Equal(e.Fields, fields):
			return true, nil
		}
		return false, nil
	}
	return false, nil
}

// loadRecoveryStatus reads the split in force for status answers, and warns when it is not the
// one the manifest in force asks for (a crash came between a manifest change and its split:
// the next manifest change splits again).
func (c *Core) loadRecoveryStatus() {
	rec, err := loadRecord(c.db)
	if err != nil {
		c.log.Warn("the recovery record beside the sealed key does not parse", "error", err.Error())
	}
	if rec == nil {
		c.recovery.Store(nil)
	} else {
		c.recovery.Store(&api.RecoveryStatus{Possible: true, Deployment: rec.Deployment, Generation: rec.Generation, Threshold: rec.Threshold, Holders: rec.Names()})
	}
	d := c.current()
	if d == nil {
		return
	}
	holders, k, err := recoveryHolders(d.m)
	if err == nil && (holders == nil) != (rec == nil) || rec != nil && !rec.SameHolders(holders, k) {
		c.log.Warn("the recovery split in force is not the one the manifest names; the next manifest change splits the data key again")
	}
}

// recoveryStatus describes the split in force for the status answer, or nil.
func (c *Core) recoveryStatus() *api.RecoveryStatus {
	if r := c.recovery.Load(); r != nil {
		return new(*r)
	}
	return nil
}

// notRecovering answers the recovery route of a running Coordinator.
func notRecovering() *Error {
	return errorf(api.CodeConflict, "the Coordinator is not in recovery mode: it unsealed its state and runs; nothing to recover")
}

// RecoveryChallenge refuses: a running Coordinator has no recovery session.
func (c *Core) RecoveryChallenge(context.Context, [32]byte) (*api.RecoveryChallenge, error) {
	return nil, notRecovering()
}

// SubmitRecovery refuses: a running Coordinator needs no share.
func (c *Core) SubmitRecovery(context.Context, *recovery.Submission) (*api.RecoveryResponse, error) {
	return nil, notRecovering()
}
