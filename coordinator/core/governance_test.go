package core

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/store"
)

// signer is a manifest user with the key to sign approvals.
type signer struct {
	name    string
	cert    *x509.Certificate
	certPEM string
	key     crypto.Signer
}

var (
	signersOnce sync.Once
	signers     map[string]*signer
)

// govUser returns one of the governance test users: ann (ECDSA P-256), ben (RSA-2048), cat
// (Ed25519) and dan (ECDSA, no manifest role).
func govUser(t *testing.T, name string) *signer {
	t.Helper()
	signersOnce.Do(func() {
		signers = map[string]*signer{}
		keys := map[string]func() (crypto.Signer, error){
			"ann": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			"ben": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
			"cat": func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
			"dan": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		}
		serial := int64(100)
		for n, gen := range keys {
			key, err := gen()
			if err != nil {
				panic(err)
			}
			serial++
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: n},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				panic(err)
			}
			cert, _ := x509.ParseCertificate(der)
			signers[n] = &signer{name: n, cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
		}
	})
	return signers[name]
}

// govManifest is testManifest with the updaters ann, ben and cat (threshold k), dan without a
// manifest role, and a packages role for ann on "signed"; edit changes it further.
func govManifest(t *testing.T, k int, edit func(m map[string]any)) []byte {
	t.Helper()
	return testManifest(t, func(m map[string]any) {
		users := m["users"].(map[string]any)
		for _, n := range []string{"ann", "ben", "cat"} {
			users[n] = map[string]any{"certificate": govUser(t, n).certPEM, "roles": []string{"manifest-admin"}}
		}
		users["ann"].(map[string]any)["roles"] = []string{"manifest-admin", "svn-admin"}
		users["dan"] = map[string]any{"certificate": govUser(t, "dan").certPEM, "roles": []string{"reader"}}
		m["roles"].(map[string]any)["svn-admin"] = map[string]any{"resource": "packages", "names": []string{"signed", "exact"}, "actions": []string{"update"}}
		m["governance"] = map[string]any{"update_threshold": k, "pending_update_expiry": "1h"}
		if edit != nil {
			edit(m)
		}
	})
}

func (f *fixture) propose(name string, raw []byte) *api.PendingUpdate {
	f.t.Helper()
	p, err := f.c.ProposeManifest(f.t.Context(), govUser(f.t, name).cert, raw)
	if err != nil {
		f.t.Fatalf("ProposeManifest by %s: %v", name, err)
	}
	return p
}

func (f *fixture) pending() *api.PendingUpdate {
	f.t.Helper()
	p, err := f.c.PendingManifest(f.t.Context())
	if err != nil {
		f.t.Fatalf("PendingManifest: %v", err)
	}
	return p
}

func sign(t *testing.T, name string, p *api.PendingUpdate) []byte {
	t.Helper()
	sig, err := client.SignApproval(govUser(t, name).key, p)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (f *fixture) approve(name string, p *api.PendingUpdate) (*api.ApproveResponse, error) {
	return f.c.ApproveManifest(f.t.Context(), govUser(f.t, name).cert, p.ID, p.Digest, sign(f.t, name, p))
}

func (f *fixture) mustApprove(name string, p *api.PendingUpdate) *api.ApproveResponse {
	f.t.Helper()
	r, err := f.approve(name, p)
	if err != nil {
		f.t.Fatalf("ApproveManifest by %s: %v", name, err)
	}
	return r
}

// newGovFixture sets the first manifest with threshold k.
func newGovFixture(t *testing.T, k int) *fixture {
	f := newFixture(t)
	f.setManifest("", govManifest(t, k, nil))
	return f
}

func TestThresholdOneKeepsManifestSet(t *testing.T) {
	f := newGovFixture(t, 1)
	r, err := f.c.SetManifest(t.Context(), govUser(t, "ben").cert, govManifest(t, 1, func(m map[string]any) { m["settings"] = map[string]any{"trust_domain": "v2.test"} }))
	if err != nil || r.Version != 2 {
		t.Fatalf("SetManifest with threshold 1 = %+v, %v; want version 2", r, err)
	}
	// Proposals work too: one approval applies.
	p := f.propose("ann", govManifest(t, 1, nil))
	if a := f.mustApprove("ann", p); !a.Applied || a.Version != 3 || a.Threshold != 1 {
		t.Errorf("approval with threshold 1 = %+v; want applied as version 3", a)
	}
	// A manifest set withdraws a pending update, approved (if at all) against the version replaced.
	p = f.propose("ann", govManifest(t, 1, nil))
	f.setManifestAs("ben", govManifest(t, 1, nil))
	_, err = f.c.PendingManifest(t.Context())
	wantError(t, err, api.CodeNotFound, "no manifest update is pending")
	_, err = f.approve("cat", p)
	wantError(t, err, api.CodeNotFound)
}

func TestThresholdRefusesManifestSet(t *testing.T) {
	f := newGovFixture(t, 2)
	_, err := f.c.SetManifest(t.Context(), govUser(t, "ann").cert, govManifest(t, 1, nil))
	wantError(t, err, api.CodeForbidden, "needs 2 approvals", "cloister manifest propose")
	if f.c.ManifestVersion() != 1 {
		t.Errorf("version %d after a refused set", f.c.ManifestVersion())
	}
}

func TestProposeRefusals(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	next := govManifest(t, 2, func(m map[string]any) { m["settings"] = map[string]any{"trust_domain": "next.test"} })
	_, err := f.c.ProposeManifest(ctx, nil, next)
	wantError(t, err, api.CodeUnauthenticated, "needs a client certificate of a user with the manifest update role")
	_, err = f.c.ProposeManifest(ctx, govUser(t, "dan").cert, next)
	wantError(t, err, api.CodeForbidden, `user "dan" has no role that grants update on the manifest`)
	_, err = f.c.ProposeManifest(ctx, as(t, "stranger"), next)
	wantError(t, err, api.CodeUnauthenticated, "belongs to no user")
	_, err = f.c.ProposeManifest(ctx, govUser(t, "ann").cert, []byte(`{"workloads": {"x": {"package": "nope"}}}`))
	wantError(t, err, api.CodeManifestInvalid, `unknown package "nope"`)
	// A threshold that the updaters with valid certificates cannot reach.
	_, err = f.c.ProposeManifest(ctx, govUser(t, "ann").cert, govManifest(t, 3, func(m map[string]any) {
		delete(m["users"].(map[string]any), "cat")
		delete(m["users"].(map[string]any), "admin")
		m["users"].(map[string]any)["old"] = map[string]any{"certificate": expiredCertPEM(t), "roles": []string{"manifest-admin"}}
	}))
	wantError(t, err, api.CodeManifestInvalid, "governance.update_threshold is 3 but only 2 user(s)")
	if _, err := f.c.PendingManifest(ctx); err == nil {
		t.Errorf("a refused proposal is pending")
	}

	p := f.propose("ann", next)
	if p.Proposer != "ann" || p.BaseVersion != 1 || p.Threshold != 2 || len(p.Approvals) != 0 || len(p.ID) != 32 {
		t.Errorf("proposal = %+v", p)
	}
	// One pending update at a time; the refusal names it.
	_, err = f.c.ProposeManifest(ctx, govUser(t, "ben").cert, govManifest(t, 2, nil))
	wantError(t, err, api.CodeConflict, "another manifest update is pending", p.Digest, `proposed by "ann"`)
}

func expiredCertPEM(t *testing.T) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(999), Subject: pkix.Name{CommonName: "old"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestApprovalFlow(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	next := govManifest(t, 2, func(m map[string]any) { m["settings"] = map[string]any{"trust_domain": "next.test"} })
	p := f.propose("ann", next)
	got := f.pending()
	if !bytes.Equal(got.Manifest, next) || got.Digest != p.Digest || got.Deployment != f.c.deploymentID() {
		t.Errorf("PendingManifest does not return the proposal: %+v", got)
	}
	_, interBefore := f.c.Certificates()

	// Refusals.
	_, err := f.c.ApproveManifest(ctx, govUser(t, "dan").cert, p.ID, p.Digest, sign(t, "dan", p))
	wantError(t, err, api.CodeForbidden, `user "dan" has no role that grants update on the manifest`)
	_, err = f.c.ApproveManifest(ctx, nil, p.ID, p.Digest, nil)
	wantError(t, err, api.CodeUnauthenticated)
	other := *p
	other.Digest = strings.Repeat("ab", 32)
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, p.ID, other.Digest, sign(t, "ben", &other))
	wantError(t, err, api.CodeConflict, "the approval is for manifest \""+other.Digest, "the pending update is manifest "+p.Digest)
	// A signature over another hash, sent with the right one.
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, p.ID, p.Digest, sign(t, "ben", &other))
	wantError(t, err, api.CodeSignatureInvalid, `user "ben": the signature does not verify`, p.Digest)
	// Someone else's signature.
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, p.ID, p.Digest, sign(t, "ann", p))
	wantError(t, err, api.CodeSignatureInvalid)
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, p.ID, p.Digest, nil)
	wantError(t, err, api.CodeSignatureInvalid)

	// One approval is not enough; each updater counts once.
	if a := f.mustApprove("ann", p); a.Applied || a.Approvals != 1 || a.Threshold != 2 {
		t.Errorf("first approval = %+v; want 1 of 2, not applied", a)
	}
	_, err = f.approve("ann", p)
	wantError(t, err, api.CodeConflict, `user "ann" has already approved`)
	if f.c.ManifestVersion() != 1 {
		t.Fatalf("applied after one approval of two")
	}
	// The pending update and its approval survive a restart.
	f.reopen()
	if got := f.pending(); len(got.Approvals) != 1 || got.Approvals[0].User != "ann" {
		t.Fatalf("after a restart the pending update has approvals %+v", got.Approvals)
	}
	a := f.mustApprove("cat", p) // Ed25519
	if !a.Applied || a.Version != 2 || a.Digest != p.Digest || a.Approvals != 2 {
		t.Errorf("second approval = %+v; want applied as version 2", a)
	}
	raw, v, _ := f.c.Manifest()
	if v != 2 || !bytes.Equal(raw, next) {
		t.Errorf("manifest version %d after the apply, want 2 with the proposed bytes", v)
	}
	if _, inter := f.c.Certificates(); inter == interBefore {
		t.Errorf("the apply kept the intermediate")
	}
	_, err = f.c.PendingManifest(ctx)
	wantError(t, err, api.CodeNotFound, "no manifest update is pending")
	if logs := f.logs.String(); !strings.Contains(logs, `"msg":"manifest update applied"`) || !strings.Contains(logs, `"approvers":["ann","cat"]`) {
		t.Errorf("the apply was not logged with its approvers:\n%s", logs)
	}
	f.reopen()
	if f.c.ManifestVersion() != 2 {
		t.Errorf("version %d after a restart, want 2", f.c.ManifestVersion())
	}
}

func TestApprovalReplay(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	next := govManifest(t, 2, func(m map[string]any) { m["settings"] = map[string]any{"trust_domain": "next.test"} })
	first := f.propose("ann", next)
	oldSig := sign(t, "ben", first)
	if _, err := f.c.CancelManifest(ctx, govUser(t, "ben").cert, first.ID); err != nil {
		t.Fatal(err)
	}
	// The same document proposed again is another proposal: the old approval does not count.
	second := f.propose("ann", next)
	if second.Digest != first.Digest || second.ID == first.ID {
		t.Fatalf("proposals %+v and %+v", first, second)
	}
	_, err := f.c.ApproveManifest(ctx, govUser(t, "ben").cert, first.ID, first.Digest, oldSig)
	wantError(t, err, api.CodeConflict, "the approval is for proposal", "which is not pending")
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, second.ID, second.Digest, oldSig)
	wantError(t, err, api.CodeSignatureInvalid)
	// An approval made against another base version does not verify either.
	stale := *second
	stale.BaseVersion = 0
	_, err = f.c.ApproveManifest(ctx, govUser(t, "ben").cert, second.ID, second.Digest, sign(t, "ben", &stale))
	wantError(t, err, api.CodeSignatureInvalid, "replacing version 1")
	if a := f.mustApprove("ben", second); a.Applied {
		t.Errorf("applied after one approval")
	}
}

func TestPendingExpires(t *testing.T) {
	f := newGovFixture(t, 2)
	p := f.propose("ann", govManifest(t, 2, nil))
	if want := f.now.Add(time.Hour).UTC(); !p.ExpiresAt.Equal(want) {
		t.Errorf("expires at %v, want %v (pending_update_expiry 1h)", p.ExpiresAt, want)
	}
	f.mustApprove("ann", p)
	f.now = f.now.Add(time.Hour)
	_, err := f.c.PendingManifest(t.Context())
	wantError(t, err, api.CodeNotFound, "expired at")
	_, err = f.approve("ben", p)
	wantError(t, err, api.CodeNotFound, "expired at")
	if f.c.ManifestVersion() != 1 {
		t.Errorf("an expired update applied")
	}
	// An expired update does not block a new proposal.
	q := f.propose("ben", govManifest(t, 2, nil))
	if q.ID == p.ID || len(f.pending().Approvals) != 0 {
		t.Errorf("the new proposal inherited the expired one: %+v", q)
	}
}

func TestCancelManifest(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	_, err := f.c.CancelManifest(ctx, govUser(t, "ann").cert, "")
	wantError(t, err, api.CodeNotFound, "no manifest update is pending")
	p := f.propose("ann", govManifest(t, 2, nil))
	_, err = f.c.CancelManifest(ctx, govUser(t, "dan").cert, "")
	wantError(t, err, api.CodeForbidden, `user "dan" is neither the proposer ("ann") nor`)
	_, err = f.c.CancelManifest(ctx, govUser(t, "ben").cert, strings.Repeat("0", 32))
	wantError(t, err, api.CodeConflict, "is not pending")
	c, err := f.c.CancelManifest(ctx, govUser(t, "ben").cert, p.ID)
	if err != nil || c.ID != p.ID {
		t.Fatalf("CancelManifest = %+v, %v", c, err)
	}
	_, err = f.approve("cat", p)
	wantError(t, err, api.CodeNotFound)
}

// Changing the threshold and the updaters is an update approved under the rules in force.
func TestThresholdChangeUnderCurrentRules(t *testing.T) {
	f := newGovFixture(t, 2)
	// To threshold 1 with ann as the only updater: still two approvals of the current updaters.
	lax := govManifest(t, 1, func(m map[string]any) {
		for _, n := range []string{"ben", "cat"} {
			m["users"].(map[string]any)[n].(map[string]any)["roles"] = []string{"reader"}
		}
	})
	p := f.propose("ann", lax)
	if p.Threshold != 2 {
		t.Errorf("threshold %d shown for the proposal, want the current 2", p.Threshold)
	}
	if a := f.mustApprove("ann", p); a.Applied {
		t.Fatalf("the proposed threshold 1 applied the update after one approval")
	}
	if a := f.mustApprove("ben", p); !a.Applied {
		t.Fatalf("not applied after 2 approvals: %+v", a)
	}
	// Now ann alone may set the manifest, and ben no longer may.
	if _, err := f.c.SetManifest(t.Context(), govUser(t, "ben").cert, lax); err == nil {
		t.Errorf("ben, no longer an updater, set the manifest")
	}
	f.setManifestAs("ann", govManifest(t, 3, nil))
	if got := f.c.current().m.Governance.UpdateThreshold; got != 3 {
		t.Errorf("threshold %d in force, want 3", got)
	}
}

func (f *fixture) setManifestAs(name string, raw []byte) {
	f.t.Helper()
	if _, err := f.c.SetManifest(f.t.Context(), govUser(f.t, name).cert, raw); err != nil {
		f.t.Fatalf("SetManifest by %s: %v", name, err)
	}
}

// instanceKeys lists the keys of bucketInstances.
func (f *fixture) instanceKeys() []string {
	f.t.Helper()
	var keys []string
	err := f.db.View(f.t.Context(), func(tx *store.Tx) error {
		return tx.ForEach(bucketInstances, func(k string, _ []byte) error {
			keys = append(keys, displayKey(k))
			return nil
		})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

func TestApplyCarriesSecrets(t *testing.T) {
	f := newFixture(t)
	before := govManifest(t, 2, func(m map[string]any) {
		m["secrets"].(map[string]any)["inst2"] = map[string]any{"type": "symmetric-key", "size": 128, "per_instance": true}
		m["workloads"].(map[string]any)["web"].(map[string]any)["env"].(map[string]string)["INST2"] = "{{.Secrets.inst2.Hex}}"
	})
	f.setManifest("", before)
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("uploaded")}); err != nil {
		t.Fatal(err)
	}
	first := f.mustActivate("web", "i1")
	old := f.readAll("shared", "other", "cert", "upload")
	if keys := f.instanceKeys(); len(keys) != 0 {
		t.Fatalf("stored per-instance values %v, want none (symmetric ones are derived)", keys)
	}
	// Change shared, remove other and inst2, add fresh; the rest stays.
	after := govManifest(t, 2, func(m map[string]any) {
		sec := m["secrets"].(map[string]any)
		sec["shared"] = map[string]any{"type": "symmetric-key", "size": 256}
		delete(sec, "other")
		sec["fresh"] = map[string]any{"type": "symmetric-key", "size": 128}
		m["roles"].(map[string]any)["reader"] = map[string]any{"resource": "secrets", "names": []string{"shared", "fresh", "inst", "cert", "upload", "plain"}, "actions": []string{"read"}}
	})
	p := f.propose("ben", after)
	f.mustApprove("ben", p)
	if a := f.mustApprove("ann", p); !a.Applied {
		t.Fatalf("not applied: %+v", a)
	}
	now := f.readAll("shared", "fresh", "cert", "upload")
	if !sameCert(now["cert"], old["cert"]) || !bytes.Equal(now["upload"].Value, old["upload"].Value) {
		t.Errorf("unchanged secrets changed their values")
	}
	if bytes.Equal(now["shared"].Value, old["shared"].Value) || len(now["shared"].Value) != 32 {
		t.Errorf("the changed secret kept its value")
	}
	_, err := f.c.Secrets(t.Context(), as(t, "reader"), []string{"other"})
	wantError(t, err, api.CodeNotFound, `secret "other" is not defined`)
	err = f.db.View(t.Context(), func(tx *store.Tx) error {
		_, err := tx.Get(bucketSecrets, "other")
		return err
	})
	if err == nil {
		t.Errorf("the removed secret is still stored")
	}
	again := f.mustActivate("web", "i1")
	if again.Env["INST"] != first.Env["INST"] {
		t.Errorf("the unchanged per-instance secret changed")
	}
}

func TestUpdateSVN(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	ann := govUser(t, "ann").cert
	p := f.propose("ben", govManifest(t, 2, nil))
	f.mustActivate("web", "before") // ISVSVN 3 is admitted
	_, interBefore := f.c.Certificates()

	_, err := f.c.UpdateSVN(ctx, govUser(t, "ben").cert, "signed", 4)
	wantError(t, err, api.CodeForbidden, `user "ben" has no role that grants update on package "signed"`)
	_, err = f.c.UpdateSVN(ctx, nil, "signed", 4)
	wantError(t, err, api.CodeUnauthenticated)
	_, err = f.c.UpdateSVN(ctx, ann, "nope", 4)
	wantError(t, err, api.CodeNotFound, `package "nope" is not defined`)
	_, err = f.c.UpdateSVN(ctx, ann, "exact", 4)
	wantError(t, err, api.CodeBadRequest, "only mrsigner packages have a min_isvsvn")
	_, err = f.c.UpdateSVN(ctx, ann, "signed", 2)
	wantError(t, err, api.CodeConflict, "min_isvsvn is 3; expected a higher value, found 2 (lowering it is never allowed)")
	_, err = f.c.UpdateSVN(ctx, ann, "signed", 3)
	wantError(t, err, api.CodeConflict, "found 3 (that is no change)")

	r, err := f.c.UpdateSVN(ctx, ann, "signed", 4)
	if err != nil || r.Version != 2 {
		t.Fatalf("UpdateSVN = %+v, %v; want version 2", r, err)
	}
	raw, _, _ := f.c.Manifest()
	want, _ := json.Marshal(4)
	if !bytes.Contains(raw, []byte(`"min_isvsvn":`+string(want))) || fmt.Sprintf("%x", sha256Sum(raw)) != r.Digest {
		t.Errorf("stored manifest %s does not carry the new SVN under digest %s", raw, r.Digest)
	}
	if _, inter := f.c.Certificates(); inter == interBefore {
		t.Errorf("the SVN update kept the intermediate")
	}
	_, err = f.activate(newRequest(t, "web", "after", goodBody()))
	wantError(t, err, api.CodePolicy, "isvsvn")
	if _, err := f.activate(newRequest(t, "web", "after", attest.SimEnclaveBody(testMREnclave, testSigner, 7, 4))); err != nil {
		t.Errorf("an enclave at the new SVN was refused: %v", err)
	}
	// The pending update, made against the old SVN, was withdrawn.
	_, err = f.approve("ann", p)
	wantError(t, err, api.CodeNotFound)
	f.reopen()
	if m := f.c.current().m; *m.Packages["signed"].MinISVSVN != 4 {
		t.Errorf("min_isvsvn %d after a restart", *m.Packages["signed"].MinISVSVN)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func TestVerifyApprovalKeyTypes(t *testing.T) {
	p := &api.PendingUpdate{ID: strings.Repeat("1", 32), Digest: strings.Repeat("2", 64), BaseVersion: 7, BaseDigest: strings.Repeat("3", 64), Deployment: strings.Repeat("4", 64)}
	for _, n := range []string{"ann", "ben", "cat"} {
		u := govUser(t, n)
		sig := sign(t, n, p)
		if err := verifyApproval(u.cert, p.ApprovalMessage(), sig); err != nil {
			t.Errorf("%s (%T): %v", n, u.key, err)
		}
		sig[len(sig)/2] ^= 1
		if err := verifyApproval(u.cert, p.ApprovalMessage(), sig); err == nil {
			t.Errorf("%s: a damaged signature verified", n)
		}
	}
	want := "cloister-manifest-approval-v1\ndeployment " + p.Deployment + "\nproposal " + p.ID + "\nbase-version 7\nbase-sha256 " + p.BaseDigest + "\nmanifest-sha256 " + p.Digest + "\n"
	if got := string(p.ApprovalMessage()); got != want {
		t.Errorf("ApprovalMessage = %q, want %q", got, want)
	}
}

// An apply that fails leaves everything as it was: the version, the pending update and the
// approvals before the one that failed.
func TestFailedApplyKeepsState(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", govManifest(t, 2, func(m map[string]any) {
		m["governance"].(map[string]any)["pending_update_expiry"] = "24h"
	}))
	short := shortLivedCertPEM(t, f.now.Add(time.Hour))
	// The new manifest's threshold of 2 is reachable now, but not once "short" has expired.
	next := govManifest(t, 2, func(m map[string]any) {
		users := m["users"].(map[string]any)
		for _, n := range []string{"admin", "ben", "cat"} {
			delete(users, n)
		}
		users["short"] = map[string]any{"certificate": short, "roles": []string{"manifest-admin"}}
	})
	p := f.propose("ann", next)
	f.mustApprove("ann", p)
	f.now = f.now.Add(2 * time.Hour)
	_, err := f.approve("ben", p)
	wantError(t, err, api.CodeManifestInvalid, "governance.update_threshold is 2 but only 1 user(s)")
	if v := f.c.ManifestVersion(); v != 1 {
		t.Errorf("version %d after a failed apply", v)
	}
	f.reopen()
	if got := f.pending(); len(got.Approvals) != 1 || got.Approvals[0].User != "ann" {
		t.Errorf("approvals after a failed apply: %+v; want ann's only", got.Approvals)
	}
}

func shortLivedCertPEM(t *testing.T, notAfter time.Time) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(998), Subject: pkix.Name{CommonName: "short"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
