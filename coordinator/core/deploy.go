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

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/store"
)

func manifestKey(v int) string { return fmt.Sprintf("v/%08d", v) }
func caKey(v int) string       { return fmt.Sprintf("ca/%08d", v) }

// loadDeployment loads the current manifest version, if any.
func (c *Core) loadDeployment(ctx context.Context) error {
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
		return fmt.Errorf("load deployment: %w", err)
	}
	c.dep = dep
	if dep != nil {
		c.log.Info("loaded deployment", "manifest_version", dep.version, "manifest_digest", fmt.Sprintf("%x", dep.m.Digest()))
	} else {
		c.log.Info("waiting for a manifest")
	}
	return nil
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
// manifest whose role grants "update" on the manifest. The caller is authenticated and
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
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, &Error{Code: api.CodeManifestInvalid, Message: "manifest rejected: " + err.Error(), Err: err}
	}
	if err := checkUpdaters(m, c.now()); err != nil {
		return nil, err
	}
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
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		if err := checkIssuedAgainst(tx, m, c.now()); err != nil {
			return err
		}
		if err := tx.Put(bucketManifest, manifestKey(version), m.Bytes()); err != nil {
			return err
		}
		if err := putJSON(tx, bucketManifest, caKey(version), interRec); err != nil {
			return err
		}
		var stale []string
		if err := tx.ForEach(bucketSecrets, func(name string, _ []byte) error {
			if _, ok := secrets[name]; !ok {
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
		for name, rec := range secrets {
			if err := putJSON(tx, bucketSecrets, name, rec); err != nil {
				return err
			}
			if err := recordIssued(tx, rec); err != nil {
				return fmt.Errorf("secret %q: %w", name, err)
			}
		}
		return tx.Put(bucketManifest, "current", []byte(strconv.Itoa(version)))
	})
	if e, ok := errors.AsType[*Error](err); ok {
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("store manifest version %d: %w", version, err)
	}
	c.mu.Lock()
	c.dep = dep
	c.mu.Unlock()
	c.metrics.setState(c.Status())
	digest := fmt.Sprintf("%x", m.Digest())
	if old == nil {
		c.log.Warn("first manifest set (trust on first use)", "manifest_version", version, "manifest_digest", digest, "user", user)
	} else {
		c.log.Info("manifest updated", "manifest_version", version, "manifest_digest", digest, "user", user)
	}
	return &api.SetManifestResponse{Version: version, Digest: digest}, nil
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
