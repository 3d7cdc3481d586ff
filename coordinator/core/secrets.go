package core

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net"
	"slices"
	"strings"
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

// newSecret makes a new value for the secret name of m. Plain and user-defined secrets are
// never generated. A certificate secret the deployment CA issues is checked against every
// workload identity of m twice: its names before it is signed (the manifest check, which
// Validate has already applied, run again on what is about to be signed), and the signed
// certificate after, with crypto/x509's own host name verification. Either refusal wraps
// manifest.ErrWorkloadIdentity and nothing is stored: every workload trusts that CA, so a
// certificate a user may read must never verify as a workload.
func newSecret(m *manifest.Manifest, name string, root, inter *pki.CA, now time.Time) (*secretRecord, error) {
	s, ok := m.Secrets[name]
	if !ok {
		return nil, fmt.Errorf("secret %q: not in the manifest", name)
	}
	return makeSecret(m, name, s, root, inter, now)
}

// makeSecret makes a new value for secret s called name; certificate names are checked
// against the workload identities of m unless m is nil (which only tests do, to show what the
// check prevents).
func makeSecret(m *manifest.Manifest, name string, s manifest.Secret, root, inter *pki.CA, now time.Time) (*secretRecord, error) {
	rec := &secretRecord{Spec: specOf(s)}
	switch s.Type {
	case manifest.SymmetricKey:
		rec.Value = make([]byte, s.Size/8)
		if _, err := rand.Read(rec.Value); err != nil {
			return nil, err
		}
	case manifest.Certificate:
		if err := generateCertSecret(rec, m, name, s, root, inter, now); err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("secret %q: type %s is not generated", name, s.Type)
	}
	return rec, nil
}

func generateCertSecret(rec *secretRecord, m *manifest.Manifest, name string, s manifest.Secret, root, inter *pki.CA, now time.Time) error {
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
		// Not checked, as manifest validation does not check it: no workload trusts a
		// self-signed certificate unless its templates install it, and then it trusts
		// exactly the names it carries.
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
		cfg := pki.LeafConfig{
			CommonName: cn, DNSNames: s.DNS, IPAddresses: ips, Validity: s.Validity.D(), NotBefore: now,
		}
		if m != nil {
			if err := m.CheckCertificateNames(leafNames(cfg)); err != nil {
				return fmt.Errorf("refusing to issue the certificate: %w", err)
			}
		}
		c, err := issuer.IssueLeaf(key.Public(), cfg)
		if err != nil {
			return err
		}
		if m != nil {
			if err := checkIssuedSecret(m, c); err != nil {
				return fmt.Errorf("refusing the certificate just issued: %w", err)
			}
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

// leafNames returns the names a certificate made from cfg carries.
func leafNames(cfg pki.LeafConfig) manifest.CertificateNames {
	n := manifest.CertificateNames{CommonName: cfg.CommonName, DNS: cfg.DNSNames}
	for _, ip := range cfg.IPAddresses {
		n.IP = append(n.IP, ip.String())
	}
	for _, u := range cfg.URIs {
		n.URI = append(n.URI, u.String())
	}
	return n
}

// checkIssuedSecret refuses a certificate issued for a secret if the names it carries
// overlap an identity of a workload of m, or if crypto/x509 takes it for a workload (see
// verifiesAsWorkload).
func checkIssuedSecret(m *manifest.Manifest, c *x509.Certificate) error {
	names := manifest.CertificateNames{CommonName: c.Subject.CommonName, DNS: c.DNSNames}
	for _, ip := range c.IPAddresses {
		names.IP = append(names.IP, ip.String())
	}
	for _, u := range c.URIs {
		names.URI = append(names.URI, u.String())
	}
	if err := m.CheckCertificateNames(names); err != nil {
		return err
	}
	return verifiesAsWorkload(m, c)
}

// wildcardProbe stands for a label that a workload's wildcard DNS name covers.
const wildcardProbe = "cloister-wildcard-probe"

// verifiesAsWorkload asks crypto/x509, independently of the manifest's own matching, whether
// c could pass for a workload of m: whether c verifies for any of the workload's name, DNS
// names (a wildcard's with a label in place of "*") and addresses, and whether a certificate
// with the workload's names would verify for any DNS name of c (a name under a workload's
// wildcard). It reports the first as an error wrapping manifest.ErrWorkloadIdentity.
// crypto/x509 ignores common names; CheckCertificateNames covers them.
func verifiesAsWorkload(m *manifest.Manifest, c *x509.Certificate) error {
	for _, w := range slices.Sorted(maps.Keys(m.Workloads)) {
		wl := m.Workloads[w]
		own := &x509.Certificate{DNSNames: append([]string{w}, wl.TLS.DNS...)}
		hosts := append([]string{w}, wl.TLS.IP...)
		for _, ip := range wl.TLS.IP {
			own.IPAddresses = append(own.IPAddresses, net.ParseIP(ip))
		}
		for _, d := range wl.TLS.DNS {
			hosts = append(hosts, strings.Replace(d, "*", wildcardProbe, 1))
		}
		for _, h := range hosts {
			if c.VerifyHostname(h) == nil {
				return fmt.Errorf("the certificate verifies for %q, a name of workload %q; %w", h, w, manifest.ErrWorkloadIdentity)
			}
		}
		for _, d := range c.DNSNames {
			if own.VerifyHostname(d) == nil {
				return fmt.Errorf("the certificate's DNS name %q is one the certificate of workload %q is valid for; %w", d, w, manifest.ErrWorkloadIdentity)
			}
		}
	}
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
