package core

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/store"
)

func manifestKey(v int) string { return fmt.Sprintf("v/%08d", v) }
func caKey(v int) string       { return fmt.Sprintf("ca/%08d", v) }

// loadDeployment loads the current manifest version, if any.
func (c *Core) loadDeployment(ctx context.Context) error {
	dep, err := c.readDeployment(ctx)
	if err != nil {
		return err
	}
	c.dep = dep
	if dep != nil {
		c.log.Info("loaded deployment", "manifest_version", dep.version, "manifest_digest", fmt.Sprintf("%x", dep.m.Digest()))
	} else {
		c.log.Info("waiting for a manifest")
	}
	return nil
}

// readDeployment reads the deployment of the stored manifest; nil while there is none.
func (c *Core) readDeployment(ctx context.Context) (*deployment, error) {
	var dep *deployment
	err := c.db.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Get(bucketManifest, "current")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		version, err := strconv.Atoi(string(b))
		if err != nil || version < 1 {
			return fmt.Errorf("state %s/current is corrupt: %q is not a version", bucketManifest, b)
		}
		raw, err := tx.Get(bucketManifest, manifestKey(version))
		if err != nil {
			return fmt.Errorf("load manifest version %d: %w", version, err)
		}
		m, err := manifest.Parse(raw)
		if err != nil {
			return fmt.Errorf("stored manifest version %d no longer parses: %w", version, err)
		}
		var rec caRecord
		if err := getJSON(tx, bucketManifest, caKey(version), &rec); err != nil {
			return fmt.Errorf("load intermediate CA of version %d: %w", version, err)
		}
		inter, err := rec.decode()
		if err != nil {
			return fmt.Errorf("load intermediate CA of version %d: %w", version, err)
		}
		secrets := map[string]*secretRecord{}
		err = tx.ForEach(bucketSecrets, func(name string, v []byte) error {
			rec := &secretRecord{}
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("state %s/%s is corrupt: %w", bucketSecrets, name, err)
			}
			secrets[name] = rec
			return nil
		})
		if err != nil {
			return err
		}
		dep, err = c.newDeployment(m, version, inter, secrets)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load deployment: %w", err)
	}
	return dep, nil
}

func (c *Core) newDeployment(m *manifest.Manifest, version int, inter *pki.CA, secrets map[string]*secretRecord) (*deployment, error) {
	users, err := userIndex(m)
	if err != nil {
		return nil, err
	}
	return &deployment{
		m:        m,
		version:  version,
		inter:    inter,
		interPEM: string(pki.EncodeCertPEM(inter.Cert)),
		rootPEM:  string(pki.EncodeCertPEM(c.root.Cert)),
		secrets:  secrets,
		users:    users,
	}, nil
}

// SetManifest sets a new manifest. cert is the caller's client certificate, or nil. The first
// manifest may be set by anyone (trust on first use); later ones need a user of the current
// manifest whose role grants "update" on the manifest, and a current manifest whose
// governance.update_threshold is 1: with a higher threshold, updates go through
// [Core.ProposeManifest] and [Core.ApproveManifest]. The caller is authenticated and
// authorized against the manifest being replaced, under the lock that replaces it.
func (c *Core) SetManifest(ctx context.Context, cert *x509.Certificate, raw []byte) (*api.SetManifestResponse, error) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	old := c.current()
	var user string
	if old != nil {
		var err error
		if user, err = old.authenticate(cert, c.now()); err != nil {
			return nil, err
		}
		if user == "" {
			return nil, errorf(api.CodeUnauthenticated, "a manifest is already set; updating it needs a client certificate of a user with the manifest update role")
		}
		if !old.allowed(user, manifest.ResourceManifest, manifest.Update, "") {
			return nil, errorf(api.CodeForbidden, "user %q has no role that grants update on the manifest", user)
		}
		if k := old.m.Governance.UpdateThreshold; k > 1 {
			return nil, errorf(api.CodeForbidden, "the manifest in force (version %d) needs %d approvals for an update (governance.update_threshold); propose it with `cloister manifest propose` and have %d updaters approve it",
				old.version, k, k)
		}
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, &Error{Code: api.CodeManifestInvalid, Message: "manifest rejected: " + err.Error(), Err: err}
	}
	if err := checkUpdaters(m, c.now()); err != nil {
		return nil, err
	}
	plan, err := c.planManifest(m, old)
	if err != nil {
		return nil, err
	}
	if err := c.commitManifestSet(ctx, plan, user); err != nil {
		return nil, err
	}
	c.install(plan)
	digest := fmt.Sprintf("%x", m.Digest())
	if old == nil {
		c.log.Warn("first manifest set (trust on first use)", "manifest_version", plan.version, "manifest_digest", digest, "user", user)
	} else {
		c.log.Info("manifest updated", "manifest_version", plan.version, "manifest_digest", digest, "user", user)
	}
	resp := &api.SetManifestResponse{Version: plan.version, Digest: digest}
	resp.RecoveryShares, resp.RecoveryWarning = c.syncRecovery(ctx, m, user)
	return resp, nil
}

// commitManifestSet stores the manifest of plan, set by user ("" for the first manifest), in
// one transaction.
func (c *Core) commitManifestSet(ctx context.Context, plan *manifestPlan, user string) error {
	return storeError(plan.version, c.db.Update(ctx, func(tx *store.Tx) error {
		if err := c.putManifest(tx, plan); err != nil {
			return err
		}
		return c.recordManifestSet(tx, user, plan)
	}))
}

// storeError turns the error of a transaction that stored manifest version into what callers
// see: a refusal (*Error) as it is, anything else wrapped.
func storeError(version int, err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if err != nil {
		return fmt.Errorf("store manifest version %d: %w", version, err)
	}
	return nil
}

// manifestPlan is a new manifest version, ready to store ([Core.putManifest]) and then install
// ([Core.install]).
type manifestPlan struct {
	m        *manifest.Manifest
	version  int
	interRec caRecord
	secrets  map[string]*secretRecord
	dep      *deployment
}

// planManifest makes what version old+1 needs for m: its intermediate CA and its shared
// secrets (see carrySecrets). Nothing is stored.
func (c *Core) planManifest(m *manifest.Manifest, old *deployment) (*manifestPlan, error) {
	version := 1
	if old != nil {
		version = old.version + 1
	}
	// The intermediate lives as long as the root: it changes with every manifest version, and
	// an intermediate that expired between two versions would stop every activation.
	inter, err := c.root.NewIntermediate(pki.IntermediateConfig{Version: version, Now: c.now(), Validity: c.root.Cert.NotAfter.Sub(c.now())})
	if err != nil {
		return nil, fmt.Errorf("create intermediate CA: %w", err)
	}
	interRec, err := encodeCA(inter)
	if err != nil {
		return nil, err
	}
	secrets, err := c.carrySecrets(m, old, inter)
	if err != nil {
		return nil, err
	}
	dep, err := c.newDeployment(m, version, inter, secrets)
	if err != nil {
		return nil, err
	}
	return &manifestPlan{m: m, version: version, interRec: interRec, secrets: secrets, dep: dep}, nil
}

// putManifest writes plan in tx: the manifest, its intermediate and its shared secrets; it
// deletes the shared secrets m no longer has and the per-instance values of secrets that m
// removed, changed or made shared, and withdraws a pending update (approved, if at all,
// against the manifest being replaced). It refuses m, in tx, if a certificate issued earlier
// could pass for one of its workloads.
func (c *Core) putManifest(tx *store.Tx, plan *manifestPlan) error {
	m := plan.m
	// Replicas on a shared state may set manifests at once: only the one that follows the
	// stored version commits (the other's transaction meets the newer state and refuses).
	switch b, err := tx.Get(bucketManifest, "current"); {
	case errors.Is(err, store.ErrNotFound) && plan.version == 1:
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	case string(b) != strconv.Itoa(plan.version-1):
		return &Error{Code: api.CodeConflict, Message: fmt.Sprintf("the manifest changed (to version %s) while version %d was being set; read it and retry", b, plan.version)}
	}
	if err := checkIssuedAgainst(tx, m, c.now()); err != nil {
		return err
	}
	if err := tx.Put(bucketManifest, manifestKey(plan.version), m.Bytes()); err != nil {
		return err
	}
	if err := putJSON(tx, bucketManifest, caKey(plan.version), plan.interRec); err != nil {
		return err
	}
	var stale []string
	if err := tx.ForEach(bucketSecrets, func(name string, _ []byte) error {
		if _, ok := plan.secrets[name]; !ok {
			stale = append(stale, name)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, name := range stale {
		if err := tx.Delete(bucketSecrets, name); err != nil {
			return err
		}
	}
	for name, rec := range plan.secrets {
		if err := putJSON(tx, bucketSecrets, name, rec); err != nil {
			return err
		}
		if err := recordIssued(tx, rec); err != nil {
			return fmt.Errorf("secret %q: %w", name, err)
		}
	}
	if err := pruneInstances(tx, m); err != nil {
		return err
	}
	if err := deletePending(tx); err != nil {
		return err
	}
	return tx.Put(bucketManifest, "current", []byte(strconv.Itoa(plan.version)))
}

// pruneInstances deletes the stored per-instance values that m does not name: those of
// workloads m removed, of secrets m removed or made shared, of secrets the workload no longer
// uses, and of changed definitions (which get new values at the next activation).
// Certificates among them stay recorded in bucketIssued.
func pruneInstances(tx *store.Tx, m *manifest.Manifest) error {
	var stale []string
	uses := map[string]map[string]bool{} // workload -> secrets it uses
	err := tx.ForEach(bucketInstances, func(key string, v []byte) error {
		parts := strings.SplitN(key, "\x00", 3)
		if len(parts) != 3 {
			return fmt.Errorf("state %s/%q is corrupt: expected workload, secret and instance", bucketInstances, displayKey(key))
		}
		wl, name := parts[0], parts[1]
		if _, ok := m.Workloads[wl]; ok && uses[wl] == nil {
			uses[wl] = map[string]bool{}
			for _, sn := range m.SecretsUsedBy(wl) {
				uses[wl][sn] = true
			}
		}
		if s, ok := m.Secrets[name]; ok && s.PerInstance && uses[wl][name] {
			var rec secretRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("state %s/%q is corrupt: %w", bucketInstances, displayKey(key), err)
			}
			if rec.Spec == specOf(s) {
				return nil
			}
		}
		stale = append(stale, key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range stale {
		if err := tx.Delete(bucketInstances, key); err != nil {
			return err
		}
	}
	return nil
}

// install makes the stored plan the deployment in force.
func (c *Core) install(plan *manifestPlan) {
	c.mu.Lock()
	c.dep = plan.dep
	c.mu.Unlock()
	c.metrics.setState(c.Status())
}

// carrySecrets returns the shared secret values of m: values whose definition did not change
// are kept, the others generated. User-defined values carry over while their definition stays.
func (c *Core) carrySecrets(m *manifest.Manifest, old *deployment, inter *pki.CA) (map[string]*secretRecord, error) {
	out := map[string]*secretRecord{}
	for _, name := range slices.Sorted(maps.Keys(m.Secrets)) {
		s := m.Secrets[name]
		if s.PerInstance || s.Type == manifest.Plain {
			continue
		}
		if old != nil {
			if rec, ok := old.secrets[name]; ok && rec.Spec == specOf(s) {
				out[name] = rec
				continue
			}
		}
		if s.Type == manifest.UserDefined {
			continue // set later through the API
		}
		rec, err := newSecret(m, name, c.root, inter, c.now())
		if errors.Is(err, manifest.ErrWorkloadIdentity) {
			return nil, &Error{Code: api.CodeManifestInvalid, Message: "manifest rejected: " + err.Error(), Err: err}
		}
		if err != nil {
			return nil, err
		}
		out[name] = rec
	}
	return out, nil
}

// Manifest returns the current manifest as it was submitted and its version, or an error while
// no manifest is set.
func (c *Core) Manifest() ([]byte, int, error) {
	d := c.current()
	if d == nil {
		return nil, 0, notReady("no manifest has been set yet")
	}
	return d.m.Bytes(), d.version, nil
}
