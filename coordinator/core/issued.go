package core

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// Certificates the deployment CA issued to secrets stay valid after the manifest that defined
// them is replaced: every workload trusts the root, and a user who could read such a secret
// keeps its key. So a new manifest must not give a workload an identity that an unexpired
// certificate secret already carries, whatever the manifest says about that secret now. Every
// such certificate is recorded in bucketIssued when it is made.

// recordIssued records the CA-issued certificate of rec, if it has one.
func recordIssued(tx *store.Tx, rec *secretRecord) error {
	c, err := rec.issuedCert()
	if err != nil || c == nil {
		return err
	}
	return tx.Put(bucketIssued, c.SerialNumber.Text(16), c.Raw)
}

// issuedCert returns the leaf of a certificate secret the deployment CA issued, or nil for
// other secrets (self-signed certificates carry no issuer after them).
func (r *secretRecord) issuedCert() (*x509.Certificate, error) {
	if r.Cert == "" {
		return nil, nil
	}
	leaf, rest := pem.Decode([]byte(r.Cert))
	if leaf == nil {
		return nil, errors.New("stored certificate secret is not PEM")
	}
	if next, _ := pem.Decode(rest); next == nil {
		return nil, nil // self-signed: no workload trusts it through the deployment CA
	}
	return x509.ParseCertificate(leaf.Bytes)
}

// checkIssuedAgainst refuses m if any unexpired certificate the deployment CA issued to a
// secret, under this or an earlier manifest version, would pass for one of m's workloads.
// Expired records are pruned. Certificates made before records were kept are found in the
// stored secret values.
func checkIssuedAgainst(tx *store.Tx, m *manifest.Manifest, now time.Time) error {
	var expired []string
	check := func(where string, c *x509.Certificate) error {
		if now.After(c.NotAfter) {
			return nil
		}
		if err := checkIssuedSecret(m, c); err != nil {
			return &Error{Code: api.CodeManifestInvalid, Err: err, Message: fmt.Sprintf(
				"manifest rejected: the certificate secret %s (serial %s, CN %q, valid until %s) issued under an earlier manifest version is still valid and every workload trusts it: %v; give the workload other names, or wait until that certificate expires",
				where, c.SerialNumber.Text(16), c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), err)}
		}
		return nil
	}
	err := tx.ForEach(bucketIssued, func(serial string, der []byte) error {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("state %s/%s is corrupt: %w", bucketIssued, serial, err)
		}
		if now.After(c.NotAfter) {
			expired = append(expired, serial)
		}
		return check("record "+serial, c)
	})
	if err != nil {
		return err
	}
	for _, b := range []string{bucketSecrets, bucketInstances} {
		err := tx.ForEach(b, func(key string, v []byte) error {
			rec := &secretRecord{}
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("state %s/%q is corrupt: %w", b, key, err)
			}
			c, err := rec.issuedCert()
			if err != nil {
				return fmt.Errorf("state %s/%q: %w", b, key, err)
			}
			if c == nil {
				return nil
			}
			return check(fmt.Sprintf("%q", displayKey(key)), c)
		})
		if err != nil {
			return err
		}
	}
	for _, serial := range expired {
		if err := tx.Delete(bucketIssued, serial); err != nil {
			return err
		}
	}
	return nil
}

// displayKey shows a per-instance key (workload NUL secret NUL instance) readably.
func displayKey(k string) string {
	out := []byte(k)
	for i, b := range out {
		if b == 0 {
			out[i] = '/'
		}
	}
	return string(out)
}
