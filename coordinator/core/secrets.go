package core

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
)

// secretRecord is a stored secret value and the definition it was made for. A definition that
// changes in a later manifest gets a new value; an unchanged one keeps its value.
type secretRecord struct {
	Spec  string `json:"spec"`            // canonical JSON of the manifest.Secret
	Value []byte `json:"value,omitempty"` // symmetric keys and user-defined values
	Cert  string `json:"cert,omitempty"`  // certificate then its issuer (unless self-signed), PEM
	Key   string `json:"key,omitempty"`   // PKCS #8 PEM

	once sync.Once // decodes val on first use: keys are parsed once, not per activation
	val  manifest.SecretValue
	err  error
}

func specOf(s manifest.Secret) string {
	b, _ := json.Marshal(s) // a struct of plain fields: cannot fail
	return string(b)
}

// value returns r as a template input.
func (r *secretRecord) value() (manifest.SecretValue, error) {
	r.once.Do(func() { r.val, r.err = r.decode() })
	return r.val, r.err
}

func (r *secretRecord) decode() (manifest.SecretValue, error) {
	if r.Cert == "" {
		return manifest.SecretValue{Bytes: r.Value}, nil
	}
	block, _ := pem.Decode([]byte(r.Cert))
	if block == nil {
		return manifest.SecretValue{}, fmt.Errorf("stored certificate secret is not PEM")
	}
	key, err := pki.ParseKeyPEM([]byte(r.Key))
	if err != nil {
		return manifest.SecretValue{}, fmt.Errorf("stored certificate secret key: %w", err)
	}
	pub, err := pki.EncodePublicKeyPEM(key.Public())
	if err != nil {
		return manifest.SecretValue{}, err
	}
	return manifest.SecretValue{Bytes: block.Bytes, CertPEM: []byte(r.Cert), KeyPEM: []byte(r.Key), PublicPEM: pub}, nil
}

// generateSecret makes a new value for a secret definition. Plain and user-defined secrets
// are never generated.
func generateSecret(name string, s manifest.Secret, root, inter *pki.CA, now time.Time) (*secretRecord, error) {
	rec := &secretRecord{Spec: specOf(s)}
	switch s.Type {
	case manifest.SymmetricKey:
		rec.Value = make([]byte, s.Size/8)
		if _, err := rand.Read(rec.Value); err != nil {
			return nil, err
		}
	case manifest.Certificate:
		if err := generateCertSecret(rec, name, s, root, inter, now); err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("secret %q: type %s is not generated", name, s.Type)
	}
	return rec, nil
}

func generateCertSecret(rec *secretRecord, name string, s manifest.Secret, root, inter *pki.CA, now time.Time) error {
	key, err := pki.GenerateKey(string(s.Algorithm))
	if err != nil {
		return err
	}
	cn := s.CommonName
	if cn == "" {
		cn = name
	}
	var ips []net.IP
	for _, ip := range s.IP {
		ips = append(ips, net.ParseIP(ip))
	}
	var chain []*x509.Certificate
	switch {
	case s.SelfSigned:
		c, err := selfSigned(key, cn, s.DNS, ips, s.IsCA, pki.IsSimulation(root.Cert), now, s.Validity.D())
		if err != nil {
			return err
		}
		chain = []*x509.Certificate{c}
	case s.IsCA:
		// Manifest validation refuses this: a CA issued by the deployment CA could sign
		// certificates that every workload trusts.
		return fmt.Errorf("a CA certificate secret must be self-signed")
	default:
		issuer := inter
		c, err := issuer.IssueLeaf(key.Public(), pki.LeafConfig{
			CommonName: cn, DNSNames: s.DNS, IPAddresses: ips, Validity: s.Validity.D(), NotBefore: now,
		})
		if err != nil {
			return err
		}
		chain = []*x509.Certificate{c, issuer.Cert}
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	rec.Cert = string(pki.EncodeCertPEM(chain...))
	rec.Key = string(keyPEM)
	return nil
}

func selfSigned(key crypto.Signer, cn string, dns []string, ips []net.IP, isCA, simulation bool, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: cn}
	if simulation { // like every certificate of a simulated deployment
		subject.OrganizationalUnit = []string{pki.SimulationOU}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		DNSNames:              dns,
		IPAddresses:           ips,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if !isCA {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
