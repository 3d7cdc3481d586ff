package core

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/store"
)

// Store layout. Bucket and key names are not secret; every value is encrypted by the store.
const (
	bucketPKI       = "pki"       // "root": caRecord, "tls-key": PKCS #8 PEM
	bucketManifest  = "manifest"  // "current": version; "v/%08d": raw manifest; "ca/%08d": caRecord
	bucketSecrets   = "secrets"   // name: secretRecord (shared secrets)
	bucketInstances = "instances" // workload "\x00" name "\x00" instance: secretRecord (per-instance secrets)
	bucketCounts    = "activations"
	bucketIssued    = "issued" // serial (hex): DER of every certificate secret the deployment CA issued
	// The audit log's buckets are described in audit.go.
)

// caRecord is a stored CA.
type caRecord struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

func getJSON(tx *store.Tx, bucket, key string, v any) error {
	b, err := tx.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("state %s/%s is corrupt: %w", bucket, key, err)
	}
	return nil
}

func putJSON(tx *store.Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(bucket, key, b)
}

func encodeCA(ca *pki.CA) (caRecord, error) {
	c, k, err := ca.Marshal()
	return caRecord{Cert: string(c), Key: string(k)}, err
}

func (r caRecord) decode() (*pki.CA, error) { return pki.ParseCA([]byte(r.Cert), []byte(r.Key)) }

// loadPKI loads the root CA and the Coordinator's TLS key, creating both in a new store.
func (c *Core) loadPKI(ctx context.Context) error {
	var rootRec caRecord
	var keyPEM []byte
	err := c.db.View(ctx, func(tx *store.Tx) error {
		errRoot := getJSON(tx, bucketPKI, "root", &rootRec)
		var errKey error
		keyPEM, errKey = tx.Get(bucketPKI, "tls-key")
		switch {
		case errRoot == nil && errKey == nil:
			return nil
		case errors.Is(errRoot, store.ErrNotFound) && errors.Is(errKey, store.ErrNotFound):
			return store.ErrNotFound
		case errRoot != nil && !errors.Is(errRoot, store.ErrNotFound):
			return errRoot
		case errKey != nil && !errors.Is(errKey, store.ErrNotFound):
			return errKey
		}
		return errors.New("state is incomplete: the root CA and the Coordinator key must both exist or both be absent")
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := c.initPKI(ctx); err != nil {
			return fmt.Errorf("initialize deployment PKI: %w", err)
		}
	case err != nil:
		return fmt.Errorf("load deployment PKI: %w", err)
	default:
		if c.root, err = rootRec.decode(); err != nil {
			return fmt.Errorf("load root CA: %w", err)
		}
		key, err := pki.ParseKeyPEM(keyPEM)
		if err != nil {
			return fmt.Errorf("load Coordinator TLS key: %w", err)
		}
		if err := c.issueTLSCert(key); err != nil {
			return err
		}
	}
	if c.cfg.Simulation != pki.IsSimulation(c.root.Cert) {
		return fmt.Errorf("state was created with simulation=%v but the Coordinator runs with simulation=%v",
			pki.IsSimulation(c.root.Cert), c.cfg.Simulation)
	}
	return nil
}

// errPKIExists stops initPKI when another replica made the deployment first.
var errPKIExists = errors.New("the deployment PKI exists")

func (c *Core) initPKI(ctx context.Context) error {
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: c.cfg.Simulation, Now: c.now()})
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	rec, err := encodeCA(root)
	if err != nil {
		return err
	}
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		// Another replica of a shared state may have made the deployment meanwhile.
		if _, err := tx.Get(bucketPKI, "root"); !errors.Is(err, store.ErrNotFound) {
			return cmp.Or(err, errPKIExists)
		}
		if err := putJSON(tx, bucketPKI, "root", rec); err != nil {
			return err
		}
		return tx.Put(bucketPKI, "tls-key", keyPEM)
	})
	if errors.Is(err, errPKIExists) {
		return c.loadPKI(ctx)
	}
	if err != nil {
		return err
	}
	c.root = root
	c.log.Info("created deployment root CA", "root_serial", root.Cert.SerialNumber.Text(16))
	return c.issueTLSCert(key)
}

// issueTLSCert issues the Coordinator's TLS certificate for key. It is reissued at every
// start, so its names follow the configuration; its key stays the same.
func (c *Core) issueTLSCert(key crypto.Signer) error {
	uri, _ := url.Parse(CoordinatorURI)
	ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, c.cfg.IPAddresses...)
	dns := append([]string{"localhost"}, c.cfg.DNSNames...)
	cert, err := c.root.IssueLeaf(key.Public(), pki.LeafConfig{
		CommonName:  "Cloister Coordinator",
		DNSNames:    dns,
		IPAddresses: ips,
		URIs:        []*url.URL{uri},
		NotBefore:   c.now(),
		Validity:    c.root.Cert.NotAfter.Sub(c.now()),
	})
	if err != nil {
		return fmt.Errorf("issue Coordinator TLS certificate: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	c.spki = spki
	c.tlsCert = &tls.Certificate{
		Certificate: [][]byte{cert.Raw, c.root.Cert.Raw},
		PrivateKey:  key,
		Leaf:        cert,
	}
	return nil
}
