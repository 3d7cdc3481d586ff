package core

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// Manifest governance: updates that several updaters approve, and security-version updates.
//
// A pending update lives in bucketGovernance, in the sealed store like the rest of the state, so
// that it survives restarts: its record under "pending" and the proposed document under
// "pending-manifest". There is at most one. Every operation runs under setMu and stores its
// changes in one transaction (the commit* functions below), so a crash leaves the state before
// or after it. A pending update is withdrawn whenever the manifest changes (see putManifest):
// its approvals name the manifest it replaces.

const (
	bucketGovernance   = "governance"
	keyPending         = "pending"
	keyPendingManifest = "pending-manifest"
)

// pendingRecord is the stored pending update (its manifest is stored beside it).
type pendingRecord struct {
	ID          string           `json:"id"`
	Digest      string           `json:"digest"`
	BaseVersion int              `json:"base_version"`
	BaseDigest  string           `json:"base_digest"`
	Proposer    string           `json:"proposer"`
	ProposedAt  time.Time        `json:"proposed_at"`
	ExpiresAt   time.Time        `json:"expires_at"`
	Approvals   []approvalRecord `json:"approvals,omitempty"`
}

type approvalRecord struct {
	User      string    `json:"user"`
	At        time.Time `json:"at"`
	Signature []byte    `json:"signature"`
}

// loadPending returns the stored pending update, or nil if there is none.
func loadPending(tx *store.Tx) (*pendingRecord, error) {
	rec := &pendingRecord{}
	err := getJSON(tx, bucketGovernance, keyPending, rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

func deletePending(tx *store.Tx) error {
	for _, k := range []string{keyPending, keyPendingManifest} {
		if err := tx.Delete(bucketGovernance, k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// deploymentID is the SHA-256 of the deployment root, hex: the deployment an approval is for.
func (c *Core) deploymentID() string {
	h := sha256.Sum256(c.root.Cert.Raw)
	return hex.EncodeToString(h[:])
}

// view returns the API form of rec under d, the deployment in force.
func (c *Core) view(rec *pendingRecord, d *deployment) *api.PendingUpdate {
	p := &api.PendingUpdate{
		ID: rec.ID, Digest: rec.Digest, BaseVersion: rec.BaseVersion, BaseDigest: rec.BaseDigest,
		Deployment: c.deploymentID(), Proposer: rec.Proposer, ProposedAt: rec.ProposedAt, ExpiresAt: rec.ExpiresAt,
		Threshold: d.m.Governance.UpdateThreshold, Approvals: []api.Approval{},
	}
	for _, a := range rec.Approvals {
		p.Approvals = append(p.Approvals, api.Approval{User: a.User, At: a.At, Signature: a.Signature})
	}
	return p
}

// describe names rec for messages.
func (rec *pendingRecord) describe() string {
	return fmt.Sprintf("update %s (proposal %s) proposed by %q at %s, %d approval(s) so far, expires %s",
		rec.Digest, rec.ID, rec.Proposer, rec.ProposedAt.UTC().Format(time.RFC3339), len(rec.Approvals), rec.ExpiresAt.UTC().Format(time.RFC3339))
}

// updater authenticates cert against d and requires the manifest update role; what names the
// operation for messages.
func (c *Core) updater(d *deployment, cert *x509.Certificate, what string) (string, error) {
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return "", err
	}
	if user == "" {
		return "", errorf(api.CodeUnauthenticated, "%s needs a client certificate of a user with the manifest update role", what)
	}
	if !d.allowed(user, manifest.ResourceManifest, manifest.Update, "") {
		return "", errorf(api.CodeForbidden, "user %q has no role that grants update on the manifest", user)
	}
	return user, nil
}

func noManifest() *Error {
	return notReady("no manifest has been set yet; set the first one with `cloister manifest set`")
}

// ProposeManifest makes raw the pending update, proposed by the user whose client certificate
// is cert; the user needs the manifest update role. raw is checked as [Core.SetManifest] checks
// a manifest. A proposal is not an approval: the proposer approves like anyone else. It is
// refused with CONFLICT while another update is pending.
func (c *Core) ProposeManifest(ctx context.Context, cert *x509.Certificate, raw []byte) (*api.PendingUpdate, error) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	d := c.current()
	if d == nil {
		return nil, noManifest()
	}
	user, err := c.updater(d, cert, "proposing a manifest update")
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, &Error{Code: api.CodeManifestInvalid, Message: "manifest rejected: " + err.Error(), Err: err}
	}
	if err := checkUpdaters(m, c.now()); err != nil {
		return nil, err
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	now := c.now()
	rec := &pendingRecord{
		ID: hex.EncodeToString(id[:]), Digest: fmt.Sprintf("%x", m.Digest()),
		BaseVersion: d.version, BaseDigest: fmt.Sprintf("%x", d.m.Digest()),
		Proposer: user, ProposedAt: now.UTC(), ExpiresAt: now.Add(d.m.Governance.PendingUpdateExpiry.D()).UTC(),
	}
	if err := c.commitProposal(ctx, rec, m); err != nil {
		return nil, err
	}
	c.log.Info("manifest update proposed", "user", user, "proposal", rec.ID, "manifest_digest", rec.Digest,
		"base_version", rec.BaseVersion, "threshold", d.m.Governance.UpdateThreshold, "expires", rec.ExpiresAt)
	return c.view(rec, d), nil
}

// commitProposal stores rec and its manifest m as the pending update, in one transaction,
// unless another update is pending (an expired one is replaced) or m could not be applied
// because of a certificate issued earlier.
func (c *Core) commitProposal(ctx context.Context, rec *pendingRecord, m *manifest.Manifest) error {
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		old, err := loadPending(tx)
		if err != nil {
			return err
		}
		if old != nil && c.now().Before(old.ExpiresAt) {
			return errorf(api.CodeConflict, "another manifest update is pending: %s; approve it or cancel it first", old.describe())
		}
		if old != nil {
			if err := c.recordExpiry(tx, old); err != nil {
				return err
			}
		}
		if err := checkIssuedAgainst(tx, m, c.now()); err != nil {
			return err
		}
		if err := tx.Put(bucketGovernance, keyPendingManifest, m.Bytes()); err != nil {
			return err
		}
		if err := putJSON(tx, bucketGovernance, keyPending, rec); err != nil {
			return err
		}
		return c.recordProposal(tx, rec)
	})
	return governanceError("store the proposal", err)
}

// governanceError passes a refusal (*Error) on and wraps anything else.
func governanceError(what string, err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// PendingManifest returns the pending update with its manifest, for anyone (the manifest
// itself is public to whoever reaches the client API, and so is a proposed one). It is NOT_FOUND
// when no update is pending or the pending one has expired.
func (c *Core) PendingManifest(ctx context.Context) (*api.PendingUpdate, error) {
	d := c.current()
	if d == nil {
		return nil, noManifest()
	}
	rec, raw, err := c.livePending(ctx, d)
	if err != nil {
		return nil, err
	}
	p := c.view(rec, d)
	p.Manifest = raw
	return p, nil
}

// livePending loads the pending update and its manifest, refusing one that is missing,
// expired or stale (see live).
func (c *Core) livePending(ctx context.Context, d *deployment) (*pendingRecord, []byte, error) {
	var (
		rec *pendingRecord
		raw []byte
	)
	err := c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		if rec, err = loadPending(tx); err != nil || rec == nil {
			return err
		}
		raw, err = tx.Get(bucketGovernance, keyPendingManifest)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load the pending update: %w", err)
	}
	if err := c.live(rec, d); err != nil {
		return nil, nil, err
	}
	return rec, raw, nil
}

// live refuses a missing, expired or stale pending update.
func (c *Core) live(rec *pendingRecord, d *deployment) error {
	switch {
	case rec == nil:
		return errorf(api.CodeNotFound, "no manifest update is pending")
	case !c.now().Before(rec.ExpiresAt):
		return errorf(api.CodeNotFound, "no manifest update is pending: %s expired at %s; propose it again",
			rec.Digest, rec.ExpiresAt.UTC().Format(time.RFC3339))
	case rec.BaseVersion != d.version:
		// putManifest withdraws pending updates; this is a backstop.
		return errorf(api.CodeNotFound, "no manifest update is pending: %s was proposed against version %d, and version %d is in force",
			rec.Digest, rec.BaseVersion, d.version)
	}
	return nil
}

// ApproveManifest records the approval of the pending update by the user whose client
// certificate is cert: a user with the manifest update role of the manifest in force, who
// signed the update's approval message ([api.PendingUpdate.ApprovalMessage]) with the key of
// that certificate. id and digest name the update approved. When the approvals reach the
// update_threshold of the manifest in force, the update applies at once, as [Core.SetManifest]
// would apply it, in the same transaction as the approval that reached it.
//
// Refusals: NOT_FOUND without a live pending update; CONFLICT for an approval of another
// proposal or manifest (an earlier one, replayed) and for a second approval by one user;
// SIGNATURE_INVALID for a signature that does not verify; and those of SetManifest when the
// update applies.
func (c *Core) ApproveManifest(ctx context.Context, cert *x509.Certificate, id, digest string, signature []byte) (*api.ApproveResponse, error) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	d := c.current()
	if d == nil {
		return nil, noManifest()
	}
	user, err := c.updater(d, cert, "approving a manifest update")
	if err != nil {
		return nil, err
	}
	rec, raw, err := c.livePending(ctx, d)
	if err != nil {
		return nil, err
	}
	switch {
	case id != rec.ID:
		return nil, errorf(api.CodeConflict, "the approval is for proposal %s, which is not pending (an earlier proposal?); pending is %s; fetch it and sign it",
			quoteBounded(id), rec.describe())
	case digest != rec.Digest:
		return nil, errorf(api.CodeConflict, "the approval is for manifest %s; the pending update is manifest %s (proposal %s)",
			quoteBounded(digest), rec.Digest, rec.ID)
	case slices.ContainsFunc(rec.Approvals, func(a approvalRecord) bool { return a.User == user }):
		return nil, errorf(api.CodeConflict, "user %q has already approved update %s; each updater counts once", user, rec.Digest)
	}
	view := c.view(rec, d)
	if err := verifyApproval(cert, view.ApprovalMessage(), signature); err != nil {
		return nil, &Error{Code: api.CodeSignatureInvalid, Err: err, Message: fmt.Sprintf(
			"user %q: the signature does not verify with the user's certificate key over the approval of update %s (proposal %s, replacing version %d): %v",
			user, rec.Digest, rec.ID, rec.BaseVersion, err)}
	}
	rec.Approvals = append(rec.Approvals, approvalRecord{User: user, At: c.now().UTC(), Signature: bytes.Clone(signature)})
	k := d.m.Governance.UpdateThreshold
	resp := &api.ApproveResponse{Approvals: len(rec.Approvals), Threshold: k}
	if len(rec.Approvals) < k {
		if err := c.commitApproval(ctx, rec); err != nil {
			return nil, err
		}
		c.log.Info("manifest update approved", "user", user, "proposal", rec.ID, "manifest_digest", rec.Digest, "approvals", len(rec.Approvals), "threshold", k)
		return resp, nil
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, &Error{Code: api.CodeManifestInvalid, Message: "the pending manifest no longer parses: " + err.Error(), Err: err}
	}
	if err := checkUpdaters(m, c.now()); err != nil {
		return nil, err
	}
	plan, err := c.planManifest(m, d)
	if err != nil {
		return nil, err
	}
	if err := c.commitApply(ctx, plan, rec); err != nil {
		return nil, err
	}
	c.install(plan)
	resp.Applied, resp.Version, resp.Digest = true, plan.version, rec.Digest
	resp.RecoveryShares, resp.RecoveryWarning = c.syncRecovery(ctx, m, user)
	c.log.Info("manifest update applied", "user", user, "proposal", rec.ID, "manifest_version", plan.version, "manifest_digest", rec.Digest,
		"approvers", approvers(rec), "threshold", k)
	return resp, nil
}

func approvers(rec *pendingRecord) []string {
	var out []string
	for _, a := range rec.Approvals {
		out = append(out, a.User)
	}
	return out
}

// commitApproval stores rec with its new approval, in one transaction.
func (c *Core) commitApproval(ctx context.Context, rec *pendingRecord) error {
	return governanceError("store the approval", c.db.Update(ctx, func(tx *store.Tx) error {
		if err := putJSON(tx, bucketGovernance, keyPending, rec); err != nil {
			return err
		}
		return c.recordApproval(tx, rec)
	}))
}

// commitApply applies the pending update rec, whose last approval reached the threshold, as
// plan, in one transaction (which also withdraws the pending update).
func (c *Core) commitApply(ctx context.Context, plan *manifestPlan, rec *pendingRecord) error {
	return storeError(plan.version, c.db.Update(ctx, func(tx *store.Tx) error {
		cur, err := loadPending(tx)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != rec.ID {
			return errorf(api.CodeConflict, "the pending update changed while it was approved; fetch it again")
		}
		if err := c.putManifest(tx, plan); err != nil {
			return err
		}
		return c.recordApply(tx, rec, plan)
	}))
}

// verifyApproval checks sig over msg with the public key of cert: ECDSA (ASN.1, over
// SHA-256 of msg), RSA (PKCS #1 v1.5, SHA-256) or Ed25519 (over msg).
func verifyApproval(cert *x509.Certificate, msg, sig []byte) error {
	h := sha256.Sum256(msg)
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			return errors.New("ECDSA signature invalid")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
			return errors.New("RSA PKCS #1 v1.5 signature invalid")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("Ed25519 signature invalid")
		}
	default:
		return fmt.Errorf("the certificate's %T key cannot sign approvals; expected ECDSA, RSA or Ed25519", pub)
	}
	return nil
}

// recordExpiry records that the pending update rec lapsed: a cancel by the Coordinator, with
// reason "expired".
func (c *Core) recordExpiry(tx *store.Tx, rec *pendingRecord) error {
	return c.record(tx, audit.KindManifestCancel, actorCoordinator, map[string]string{
		"proposal": rec.ID, "manifest_sha256": rec.Digest, "approvals": strconv.Itoa(len(rec.Approvals)),
		"reason": "expired", "expired_at": rec.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

// expirePending withdraws a pending update whose time ran out and records that in the audit
// log, so that the log says when an update lapsed and not only that it stopped being pending.
// Run calls it with every count flush; a proposal that replaces an expired update records the
// expiry the same way.
func (c *Core) expirePending(ctx context.Context) error {
	var rec *pendingRecord
	if err := c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = loadPending(tx)
		return err
	}); err != nil || rec == nil || c.now().Before(rec.ExpiresAt) {
		return err
	}
	c.setMu.Lock()
	defer c.setMu.Unlock()
	expired := false
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		cur, err := loadPending(tx)
		if err != nil || cur == nil || cur.ID != rec.ID || c.now().Before(cur.ExpiresAt) {
			return err
		}
		if err := deletePending(tx); err != nil {
			return err
		}
		expired = true
		return c.recordExpiry(tx, cur)
	})
	if err == nil && expired {
		c.log.Info("manifest update expired", "proposal", rec.ID, "manifest_digest", rec.Digest, "expired_at", rec.ExpiresAt)
	}
	return err
}

// CancelManifest withdraws the pending update, for its proposer or any user with the manifest
// update role. A non-empty id must name the pending update (so that a cancel meant for an
// earlier proposal cannot withdraw a new one). It returns the withdrawn update.
func (c *Core) CancelManifest(ctx context.Context, cert *x509.Certificate, id string) (*api.PendingUpdate, error) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	d := c.current()
	if d == nil {
		return nil, noManifest()
	}
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, errorf(api.CodeUnauthenticated, "cancelling a manifest update needs a client certificate of its proposer or of a user with the manifest update role")
	}
	var rec *pendingRecord
	if err := c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = loadPending(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("load the pending update: %w", err)
	}
	if err := c.live(rec, d); err != nil {
		return nil, err
	}
	if id != "" && id != rec.ID {
		return nil, errorf(api.CodeConflict, "proposal %s is not pending; pending is %s", quoteBounded(id), rec.describe())
	}
	if user != rec.Proposer && !d.allowed(user, manifest.ResourceManifest, manifest.Update, "") {
		return nil, errorf(api.CodeForbidden, "user %q is neither the proposer (%q) nor a user whose role grants update on the manifest", user, rec.Proposer)
	}
	if err := c.commitCancel(ctx, rec, user); err != nil {
		return nil, err
	}
	c.log.Info("manifest update cancelled", "user", user, "proposal", rec.ID, "manifest_digest", rec.Digest)
	return c.view(rec, d), nil
}

// commitCancel withdraws the pending update rec for user, in one transaction.
func (c *Core) commitCancel(ctx context.Context, rec *pendingRecord, user string) error {
	return governanceError("withdraw the pending update", c.db.Update(ctx, func(tx *store.Tx) error {
		cur, err := loadPending(tx)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != rec.ID {
			return errorf(api.CodeConflict, "the pending update changed while it was cancelled; fetch it again")
		}
		if err := deletePending(tx); err != nil {
			return err
		}
		return c.recordCancel(tx, rec, user)
	}))
}

// UpdateSVN raises the min_isvsvn of package pkg to svn, for the user whose client certificate
// is cert; the user needs a packages role that grants update on pkg. It needs no approval (it
// only tightens the policy): it makes a new manifest version whose document is the current one
// with that number replaced, with a new intermediate CA; unchanged secrets keep their values.
// From then on activations below svn are refused; running workloads keep their certificates.
// A pending update is withdrawn (it would lower the SVN again). svn must be higher than the
// current value (CONFLICT otherwise).
func (c *Core) UpdateSVN(ctx context.Context, cert *x509.Certificate, pkg string, svn uint16) (*api.SetManifestResponse, error) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	d := c.current()
	if d == nil {
		return nil, noManifest()
	}
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, errorf(api.CodeUnauthenticated, "updating a package's security version needs a client certificate of a user with the update role on the package")
	}
	p, ok := d.m.Packages[pkg]
	if !ok {
		return nil, errorf(api.CodeNotFound, "package %s is not defined; defined packages: %v", quoteBounded(pkg), slices.Sorted(maps.Keys(d.m.Packages)))
	}
	if !d.allowed(user, manifest.ResourcePackages, manifest.Update, pkg) {
		return nil, errorf(api.CodeForbidden, "user %q has no role that grants update on package %q", user, pkg)
	}
	if p.MinISVSVN == nil {
		return nil, errorf(api.CodeBadRequest, "package %q names an exact enclave (mrenclave); only mrsigner packages have a min_isvsvn", pkg)
	}
	if cur := *p.MinISVSVN; svn <= cur {
		what := "lowering it is never allowed"
		if svn == cur {
			what = "that is no change"
		}
		return nil, errorf(api.CodeConflict, "package %q: min_isvsvn is %d; expected a higher value, found %d (%s)", pkg, cur, svn, what)
	}
	raw, err := d.m.WithMinISVSVN(pkg, svn)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the manifest with the new min_isvsvn: %w", err)
	}
	plan, err := c.planManifest(m, d)
	if err != nil {
		return nil, err
	}
	if err := c.commitSVNUpdate(ctx, plan, user, pkg, *p.MinISVSVN, svn); err != nil {
		return nil, err
	}
	c.install(plan)
	digest := fmt.Sprintf("%x", m.Digest())
	c.log.Info("package security version raised", "user", user, "package", pkg, "min_isvsvn_old", *p.MinISVSVN, "min_isvsvn", svn,
		"manifest_version", plan.version, "manifest_digest", digest)
	resp := &api.SetManifestResponse{Version: plan.version, Digest: digest}
	resp.RecoveryShares, resp.RecoveryWarning = c.syncRecovery(ctx, m, user)
	return resp, nil
}

// commitSVNUpdate stores the manifest with the raised SVN, plan, in one transaction (which
// also withdraws a pending update); user raised package pkg's min_isvsvn from old to svn.
func (c *Core) commitSVNUpdate(ctx context.Context, plan *manifestPlan, user, pkg string, old, svn uint16) error {
	return storeError(plan.version, c.db.Update(ctx, func(tx *store.Tx) error {
		if err := c.putManifest(tx, plan); err != nil {
			return err
		}
		return c.recordSVNUpdate(tx, user, pkg, old, svn, plan)
	}))
}
