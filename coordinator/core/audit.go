package core

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/store"
)

// The audit log lives in the sealed store, written in the same transaction as the change each
// entry records: after a crash the log and the state agree, and nothing acknowledged is missing
// from the log.
//
// Entries are kept in segments of a fixed number of entries (auditTip.Segment, 100,000 unless
// the log was created otherwise), one store bucket each, so that no bucket grows without bound
// and a later version can archive or drop old segments. Each segment also keeps the hash that
// precedes its first entry ("prev"), the previous segment's last hash carried forward, so a
// segment can be checked on its own.
const (
	bucketAudit         = "audit"          // "tip": auditTip
	bucketAuditPending  = "audit-pending"  // hour "\x00" workload: activationCounts of an open hour
	auditSegmentBucket  = "audit-segment-" // + segment number (%08d): seq (%020d): encoded entry; "prev": hex hash
	defaultAuditSegment = 100_000
	// auditExportChunk is how many entries an export reads per store transaction: a slow
	// reader of an export never holds a read transaction open.
	auditExportChunk = 1024
	// actorCoordinator is the actor of entries the Coordinator makes on its own.
	actorCoordinator = "coordinator"
	// actorAnonymous is the actor of a change made without a client certificate: the first
	// manifest (trust on first use).
	actorAnonymous = "anonymous"
)

// auditTip names the newest entry of the log, stored with every entry appended.
type auditTip struct {
	Seq     uint64     `json:"seq"`
	Hash    audit.Hash `json:"hash"`
	Time    time.Time  `json:"time"`
	Segment uint64     `json:"segment"` // entries per segment, fixed when the log is created
}

// auditState is the Coordinator's view of its log outside transactions.
type auditState struct {
	segment uint64 // entries per segment for a new log (tests set a small one)

	mu   sync.Mutex  // guards head
	head *audit.Head // the newest signed head, reused while the log does not change
}

func segmentBucket(seq, size uint64) string {
	return fmt.Sprintf("%s%08d", auditSegmentBucket, (seq-1)/size+1)
}

func entryKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func (c *Core) readTip(tx *store.Tx) (auditTip, error) {
	tip := auditTip{Segment: c.audit.segment}
	err := getJSON(tx, bucketAudit, "tip", &tip)
	if errors.Is(err, store.ErrNotFound) {
		return auditTip{Segment: c.audit.segment}, nil
	}
	if err == nil && tip.Segment == 0 {
		err = fmt.Errorf("state %s/tip is corrupt: no segment size", bucketAudit)
	}
	return tip, err
}

// record appends an entry to the audit log inside tx, the write transaction that makes the
// change it records: if tx rolls back, so does the entry. kind is one of the audit.Kind
// constants; actor is the user who made the change, or "coordinator"; fields describe the
// change and never hold a secret value. It is the one way entries are written.
func (c *Core) record(tx *store.Tx, kind, actor string, fields map[string]string) error {
	tip, err := c.readTip(tx)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	e := audit.Entry{Time: c.now(), Kind: kind, Actor: actor, Fields: fields}
	enc, h, err := audit.Resume(tip.Seq, tip.Hash, tip.Time).Append(&e)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	bucket := segmentBucket(e.Seq, tip.Segment)
	if (e.Seq-1)%tip.Segment == 0 {
		if err := tx.Put(bucket, "prev", []byte(tip.Hash.String())); err != nil {
			return err
		}
	}
	if err := tx.Put(bucket, entryKey(e.Seq), enc); err != nil {
		return err
	}
	return putJSON(tx, bucketAudit, "tip", auditTip{Seq: e.Seq, Hash: h, Time: e.Time, Segment: tip.Segment})
}

// readEntry returns the encoded entry seq of the log whose tip is tip.
func readEntry(tx *store.Tx, tip auditTip, seq uint64) ([]byte, error) {
	b, err := tx.Get(segmentBucket(seq, tip.Segment), entryKey(seq))
	if err != nil {
		return nil, fmt.Errorf("audit log entry %d: %w", seq, err)
	}
	return b, nil
}

// checkAuditLog checks, at start, that the tip names a stored entry with its hash: a store
// whose log was cut or changed does not start.
func (c *Core) checkAuditLog(ctx context.Context) error {
	return c.db.View(ctx, func(tx *store.Tx) error {
		tip, err := c.readTip(tx)
		if err != nil || tip.Seq == 0 {
			return err
		}
		b, err := readEntry(tx, tip, tip.Seq)
		if err != nil {
			return err
		}
		if h := audit.HashOf(b); h != tip.Hash {
			return fmt.Errorf("audit log: entry %d hashes to %s; the log's tip says %s", tip.Seq, h, tip.Hash)
		}
		return nil
	})
}

// recordStart writes the Coordinator's start entry, with its identity, after closing the
// activation counts the previous run left open.
func (c *Core) recordStart(ctx context.Context) error {
	fields := map[string]string{"version": Version, "tee": "sgx"}
	if c.cfg.Simulation {
		fields["tee"] = "sgx-simulation"
	}
	// The identity is read from a quote of the Coordinator itself: what it proves to clients.
	q, err := c.cfg.Issuer.Quote(ctx, [64]byte{})
	if err != nil {
		return fmt.Errorf("get the Coordinator's own quote for its start entry: %w", err)
	}
	pq, err := sgx.ParseQuote(q)
	if err != nil {
		return fmt.Errorf("the Coordinator's own quote does not parse: %w", err)
	}
	fields["mrenclave"] = hex.EncodeToString(pq.Body.MREnclave[:])
	fields["mrsigner"] = hex.EncodeToString(pq.Body.MRSigner[:])
	fields["isvprodid"] = strconv.Itoa(int(pq.Body.ISVProdID))
	fields["isvsvn"] = strconv.Itoa(int(pq.Body.ISVSVN))
	fields["debug"] = strconv.FormatBool(pq.Body.Debug())
	if d := c.current(); d != nil {
		fields["manifest_version"] = strconv.Itoa(d.version)
	}
	return c.db.Update(ctx, func(tx *store.Tx) error {
		if err := c.closeActivationHours(tx, time.Time{}); err != nil {
			return err
		}
		return c.record(tx, audit.KindCoordinatorStart, actorCoordinator, fields)
	})
}

// AuditHead returns the signed head of the audit log. The signature is made when a head is
// first asked for and reused until the log changes.
func (c *Core) AuditHead(ctx context.Context) (*audit.Head, error) {
	var tip auditTip
	err := c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		tip, err = c.readTip(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit log's tip: %w", err)
	}
	c.audit.mu.Lock()
	defer c.audit.mu.Unlock()
	if h := c.audit.head; h != nil && h.Seq == tip.Seq && h.Hash == tip.Hash {
		return new(*h), nil
	}
	h, err := audit.Resume(tip.Seq, tip.Hash, tip.Time).Head(c.now(), c.root.Key)
	if err != nil {
		return nil, err
	}
	c.audit.head = h
	return new(*h), nil
}

// ExportAudit writes the audit log from entry from (1 for all of it) to its newest entry as an
// export (see package audit) and returns the head it ends with. from may be one past the
// newest entry: the export then holds no entry, only the head, which is how a follower asks
// whether anything is new. Entries are read in chunks, each in its own read transaction, and
// written between them: the log only grows, so the export is one consistent log.
//
// The caller, whose client certificate is cert, must be a user of the current manifest.
// Nothing is written to w before the caller is authorized and from is checked.
func (c *Core) ExportAudit(ctx context.Context, cert *x509.Certificate, from uint64, w io.Writer) (*audit.Head, error) {
	if _, err := c.authorizeAuditRead(cert); err != nil {
		return nil, err
	}
	return c.exportAudit(ctx, from, w)
}

func (c *Core) exportAudit(ctx context.Context, from uint64, w io.Writer) (*audit.Head, error) {
	head, err := c.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if from == 0 || from > head.Seq+1 {
		return nil, errorf(api.CodeBadRequest, "from %d: the audit log has entries 1 to %d; expected 1 to %d", from, head.Seq, head.Seq+1)
	}
	var tip auditTip
	prev := head.Hash
	err = c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		if tip, err = c.readTip(tx); err != nil || from > head.Seq || from == 1 {
			return err
		}
		b, err := readEntry(tx, tip, from-1)
		prev = audit.HashOf(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	if from == 1 {
		prev = audit.Hash{}
	}
	aw, err := audit.NewWriter(w, from, prev)
	if err != nil {
		return nil, err
	}
	chunk := make([][]byte, 0, auditExportChunk)
	for seq := from; seq <= head.Seq; {
		chunk = chunk[:0]
		err := c.db.View(ctx, func(tx *store.Tx) error {
			for ; seq <= head.Seq && len(chunk) < auditExportChunk; seq++ {
				b, err := readEntry(tx, tip, seq)
				if err != nil {
					return err
				}
				chunk = append(chunk, b)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, b := range chunk {
			if err := aw.Entry(b); err != nil {
				return nil, err
			}
		}
	}
	return head, aw.Close(head)
}

// authorizeAuditRead returns the user whose client certificate is cert if that user may read
// the audit log: a user of the current manifest holding a role with resource "audit" and
// action "read" or, while no role of the manifest covers the audit log, any user of it (the
// log holds names, users and counts, never secret values, and every user of a deployment has a
// stake in its history). Strangers see only the signed head (in the status answer and in
// every quote).
func (c *Core) authorizeAuditRead(cert *x509.Certificate) (string, error) {
	d := c.current()
	if d == nil {
		return "", notReady("no manifest has been set yet, so there are no users who may read the audit log")
	}
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return "", err
	}
	if user == "" {
		return "", errorf(api.CodeUnauthenticated, "reading the audit log needs a client certificate of a manifest user")
	}
	if d.m.AuditRestricted() && !d.allowed(user, manifest.ResourceAudit, manifest.Read, "") {
		return "", errorf(api.CodeForbidden, "user %q has no role that grants read on the audit log (resource \"audit\"); the manifest restricts the log to such users", user)
	}
	return user, nil
}

// activation results in the audit log: "accepted", or "refused." and the lower-case error
// code (refused.attestation_failed, refused.policy_rejected, refused.not_ready, …); a refusal
// that is not the caller's doing is refused.internal.
const activationAccepted = "accepted"

func refusalClass(result string) string {
	if result == "error" || result == api.CodeInternal {
		return "refused.internal"
	}
	return "refused." + strings.ToLower(result)
}

// hourOf is the start of the hour that t falls in, UTC.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// actKey names the activations of one workload in one hour.
type actKey struct {
	hour     int64 // start of the hour, Unix seconds
	workload string
}

func keyOf(workload string, t time.Time) actKey {
	return actKey{hour: hourOf(t).Unix(), workload: workload}
}

func (k actKey) hourTime() time.Time { return time.Unix(k.hour, 0).UTC() }

func (k actKey) storeKey() string { return k.hourTime().Format(time.RFC3339) + "\x00" + k.workload }

func parseActKey(s string) (actKey, error) {
	h, w, ok := strings.Cut(s, "\x00")
	t, err := time.Parse(time.RFC3339, h)
	if !ok || err != nil || w == "" {
		return actKey{}, fmt.Errorf("state %s/%q is corrupt: expected an hour and a workload", bucketAuditPending, s)
	}
	return actKey{hour: t.Unix(), workload: w}, nil
}

// activationCounts are the activations of one workload in one hour, by result.
type activationCounts map[string]uint64

// addPending adds counts to the stored counts of an open hour, in tx.
func addPending(tx *store.Tx, k actKey, add activationCounts) error {
	stored := activationCounts{}
	if err := getJSON(tx, bucketAuditPending, k.storeKey(), &stored); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for r, n := range add {
		stored[r] += n
	}
	return putJSON(tx, bucketAuditPending, k.storeKey(), stored)
}

// closeActivationHours turns the stored counts of every hour before now into audit entries,
// one per workload and hour, and removes them; a zero now closes every hour (at start, for
// the previous run's counts, and at shutdown).
func (c *Core) closeActivationHours(tx *store.Tx, now time.Time) error {
	type pending struct {
		key    string
		k      actKey
		counts activationCounts
	}
	var closed []pending
	current := hourOf(now).Unix()
	err := tx.ForEach(bucketAuditPending, func(key string, v []byte) error {
		k, err := parseActKey(key)
		if err != nil {
			return err
		}
		if !now.IsZero() && k.hour >= current {
			return nil
		}
		var counts activationCounts
		if err := json.Unmarshal(v, &counts); err != nil {
			return fmt.Errorf("state %s/%q is corrupt: %w", bucketAuditPending, key, err)
		}
		closed = append(closed, pending{key, k, counts})
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range closed {
		fields := map[string]string{"workload": p.k.workload, "hour": p.k.hourTime().Format(time.RFC3339)}
		var total uint64
		for _, r := range slices.Sorted(maps.Keys(p.counts)) {
			if len(fields) >= audit.MaxFields-1 {
				break
			}
			fields[r] = strconv.FormatUint(p.counts[r], 10)
			total += p.counts[r]
		}
		fields["total"] = strconv.FormatUint(total, 10)
		if err := c.record(tx, audit.KindActivations, actorCoordinator, fields); err != nil {
			return err
		}
		if err := tx.Delete(bucketAuditPending, p.key); err != nil {
			return err
		}
	}
	return nil
}

// listField joins names for an entry field, bounded: a very long list keeps its first names
// and says how many there were.
func listField(names []string) string {
	const limit = 3000
	s := strings.Join(names, ",")
	if len(s) <= limit {
		return s
	}
	cut := strings.LastIndexByte(s[:limit], ',')
	if cut < 0 {
		cut = 0
	}
	return s[:cut] + fmt.Sprintf(",… (%d names)", len(names))
}

// recordSecretWrite records that user set the named secrets' values (never the values).
func (c *Core) recordSecretWrite(tx *store.Tx, user string, names []string) error {
	return c.record(tx, audit.KindSecretWrite, user, map[string]string{
		"secrets": listField(names),
		"count":   strconv.Itoa(len(names)),
	})
}

// recordManifestSet records the manifest of plan, set directly by user ("" for the first
// manifest, set by anyone), replacing the current deployment.
func (c *Core) recordManifestSet(tx *store.Tx, user string, plan *manifestPlan) error {
	return c.recordManifest(tx, audit.KindManifestSet, user, c.current(), plan.m, plan.version, nil)
}

// recordProposal records that rec was proposed.
func (c *Core) recordProposal(tx *store.Tx, rec *pendingRecord) error {
	return c.record(tx, audit.KindManifestPropose, rec.Proposer, map[string]string{
		"proposal":        rec.ID,
		"manifest_sha256": rec.Digest,
		"base_version":    strconv.Itoa(rec.BaseVersion),
		"expires":         rec.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

// recordApproval records the newest approval of rec.
func (c *Core) recordApproval(tx *store.Tx, rec *pendingRecord) error {
	a := rec.Approvals[len(rec.Approvals)-1]
	return c.record(tx, audit.KindManifestApprove, a.User, map[string]string{
		"proposal":        rec.ID,
		"manifest_sha256": rec.Digest,
		"approvals":       strconv.Itoa(len(rec.Approvals)),
	})
}

// recordApply records the last approval of rec and the manifest version it applied, plan.
func (c *Core) recordApply(tx *store.Tx, rec *pendingRecord, plan *manifestPlan) error {
	if err := c.recordApproval(tx, rec); err != nil {
		return err
	}
	return c.recordManifest(tx, audit.KindManifestApply, rec.Approvals[len(rec.Approvals)-1].User, c.current(), plan.m, plan.version, map[string]string{
		"proposal":  rec.ID,
		"proposer":  rec.Proposer,
		"approvers": listField(approvers(rec)),
	})
}

// recordCancel records that user withdrew the pending update rec.
func (c *Core) recordCancel(tx *store.Tx, rec *pendingRecord, user string) error {
	return c.record(tx, audit.KindManifestCancel, user, map[string]string{
		"proposal":        rec.ID,
		"manifest_sha256": rec.Digest,
		"approvals":       strconv.Itoa(len(rec.Approvals)),
	})
}

// recordSVNUpdate records that user raised the min_isvsvn of package pkg from old to svn,
// making manifest version plan.
func (c *Core) recordSVNUpdate(tx *store.Tx, user, pkg string, old, svn uint16, plan *manifestPlan) error {
	return c.recordManifest(tx, audit.KindSVNUpdate, user, c.current(), plan.m, plan.version, map[string]string{
		"package":        pkg,
		"min_isvsvn_old": strconv.Itoa(int(old)),
		"min_isvsvn":     strconv.Itoa(int(svn)),
	})
}

// recordManifest records a new manifest version: its hash, who set it, how its users changed
// from old (nil for the first manifest), and extra fields. kind is audit.KindManifestSet,
// KindManifestApply or KindSVNUpdate.
func (c *Core) recordManifest(tx *store.Tx, kind, user string, old *deployment, m *manifest.Manifest, version int, extra map[string]string) error {
	if user == "" {
		user = actorAnonymous
	}
	fields := map[string]string{
		"version":         strconv.Itoa(version),
		"manifest_sha256": fmt.Sprintf("%x", m.Digest()),
	}
	maps.Copy(fields, extra)
	var oldUsers map[string]manifest.User
	if old != nil {
		oldUsers = old.m.Users
	}
	var added, removed, changed []string
	for _, name := range slices.Sorted(maps.Keys(m.Users)) {
		u := m.Users[name]
		ou, ok := oldUsers[name]
		switch {
		case !ok:
			added = append(added, name)
		case ou.Certificate != u.Certificate || !slices.Equal(slices.Sorted(slices.Values(ou.Roles)), slices.Sorted(slices.Values(u.Roles))):
			changed = append(changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oldUsers)) {
		if _, ok := m.Users[name]; !ok {
			removed = append(removed, name)
		}
	}
	for k, v := range map[string][]string{"users_added": added, "users_removed": removed, "users_changed": changed} {
		if len(v) > 0 {
			fields[k] = listField(v)
		}
	}
	return c.record(tx, kind, user, fields)
}
