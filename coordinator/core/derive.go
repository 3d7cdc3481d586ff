package core

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// Per-instance symmetric keys are derived, not stored: an instance's value is
//
//	HKDF-SHA256(secret = master, salt = SHA-256(root certificate DER),
//	            info = "cloister-instance-secret-v1\x00" ‖ lp(workload) ‖ lp(secret name)
//	                   ‖ lp(secret definition) ‖ lp(instance), length = size/8)
//
// where master is 32 random bytes made once per deployment and kept in the sealed store
// (bucketDerive), lp(x) is x prefixed by its length as 4 bytes big-endian, and the secret
// definition is the canonical JSON of its manifest entry (specOf). So a value is the same at
// every activation of an instance, across restarts and on every Coordinator that shares the
// state, and it is new when the definition changes (the manifest's "changed secrets are
// regenerated"), for another workload claiming the same instance ID, and in another
// deployment. Nothing is written per instance, so the state stays the same size however
// many instances start, and a value whose secret the manifest drops leaves nothing behind.
//
// Values stored by earlier versions (bucketInstances) are served while their definition
// stays, so that running instances keep their values across an upgrade; they are deleted with
// the definition (pruneInstances). Per-instance certificates are still stored: a certificate
// carries its own serial and validity, is recorded for the workload-identity check
// (bucketIssued), and must be the same at each activation.
const (
	bucketDerive    = "derive" // "master": the 32-byte master key of derived per-instance secrets
	deriveMasterKey = "master"
	deriveMasterLen = 32
	deriveLabel     = "cloister-instance-secret-v1\x00"
)

// deriver derives per-instance secrets. It is set once in New and never changes.
type deriver struct {
	master []byte
	salt   []byte // SHA-256 of the deployment root's DER: the deployment
}

// loadDeriver loads the master key of derived secrets, creating it in a store that has none
// (a new deployment, or one made before values were derived).
func (c *Core) loadDeriver(ctx context.Context) error {
	var master []byte
	err := c.db.View(ctx, func(tx *store.Tx) error {
		var err error
		master, err = tx.Get(bucketDerive, deriveMasterKey)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		err = c.db.Update(ctx, func(tx *store.Tx) error {
			master, err = tx.Get(bucketDerive, deriveMasterKey)
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			master = make([]byte, deriveMasterLen)
			if _, err := rand.Read(master); err != nil {
				return err
			}
			return tx.Put(bucketDerive, deriveMasterKey, master)
		})
	}
	if err != nil {
		return fmt.Errorf("load the master key of per-instance secrets: %w", err)
	}
	if len(master) != deriveMasterLen {
		return fmt.Errorf("state %s/%s is corrupt: the master key of per-instance secrets is %d bytes, expected %d", bucketDerive, deriveMasterKey, len(master), deriveMasterLen)
	}
	salt := sha256.Sum256(c.root.Cert.Raw)
	c.derive = deriver{master: master, salt: salt[:]}
	return nil
}

// derivable reports whether values of s are derived rather than stored.
func derivable(s manifest.Secret) bool { return s.Type == manifest.SymmetricKey }

// instanceKey derives the value of the symmetric per-instance secret name, defined as s, for
// one instance of workload.
func (d *deriver) instanceKey(workload, name string, s manifest.Secret, instance string) ([]byte, error) {
	if !derivable(s) {
		return nil, fmt.Errorf("secret %q: a %s secret is not derived", name, s.Type)
	}
	info := deriveInfo(workload, name, specOf(s), instance)
	v, err := hkdf.Key(sha256.New, d.master, d.salt, string(info), s.Size/8)
	if err != nil {
		return nil, fmt.Errorf("secret %q: derive the value of instance %q: %w", name, instance, err)
	}
	return v, nil
}

// deriveInfo is the HKDF info of a per-instance value: the label, then each field prefixed
// by its length, so that no two different field lists give the same bytes.
func deriveInfo(fields ...string) []byte {
	n := len(deriveLabel)
	for _, f := range fields {
		n += 4 + len(f)
	}
	out := make([]byte, 0, n)
	out = append(out, deriveLabel...)
	for _, f := range fields {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}
