package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// Common names of the simulated PKI. They mirror Intel's ("Intel SGX PCK Processor CA" …);
// the PCK CA names keep Intel's suffix because sgx.PCKCATypeOf selects the PCK CRL by it.
const (
	RootCAName          = "Cloister Simulated SGX Root CA"
	PCKProcessorCAName  = "Cloister Simulated SGX PCK Processor CA"
	PCKPlatformCAName   = "Cloister Simulated SGX PCK Platform CA"
	PCKCertificateName  = "Cloister Simulated SGX PCK Certificate"
	TCBSigningName      = "Cloister Simulated SGX TCB Signing"
	simulatedOrgWarning = "Cloister SIMULATED SGX - INSECURE, NOT Intel"
)

// Certificate lifetimes, in years, similar to Intel's.
const (
	rootYears       = 30
	pckCAYears      = 15
	pckYears        = 7
	tcbSigningYears = 7
)

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// keySet holds the platform's private keys. The PCK key is the Quoting Enclave's: it signs QE
// reports. The attestation key signs quotes.
type keySet struct {
	root, pckCA, pck, tcbSigning, attestation *ecdsa.PrivateKey
}

// keyFiles names the key files under private/, in a fixed order.
func (k *keySet) files() []struct {
	name string
	key  **ecdsa.PrivateKey
} {
	return []struct {
		name string
		key  **ecdsa.PrivateKey
	}{
		{"private/root_ca_key.pem", &k.root},
		{"private/pck_ca_key.pem", &k.pckCA},
		{"private/pck_key.pem", &k.pck},
		{"private/tcb_signing_key.pem", &k.tcbSigning},
		{"private/attestation_key.pem", &k.attestation},
	}
}

func newKeySet() (keySet, error) {
	var k keySet
	for _, f := range k.files() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return k, fmt.Errorf("generate %s: %w", f.name, err)
		}
		*f.key = key
	}
	return k, nil
}

// certSet holds the platform's certificates.
type certSet struct {
	root, pckCA, pck, tcbSigning *x509.Certificate
}

// issueCerts creates the simulated PKI for keys, starting at now.
func issueCerts(keys *keySet, ext *sgx.PCKExtensions, caType sgx.PCKCAType, now time.Time) (certSet, error) {
	var c certSet
	var err error
	c.root, err = issue(RootCAName, &keys.root.PublicKey, nil, keys.root, now, rootYears, func(t *x509.Certificate) {
		t.IsCA = true
		t.MaxPathLen = 1
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
	if err != nil {
		return c, fmt.Errorf("root CA certificate: %w", err)
	}

	caName := PCKProcessorCAName
	if caType == sgx.PCKCAPlatform {
		caName = PCKPlatformCAName
	}
	c.pckCA, err = issue(caName, &keys.pckCA.PublicKey, c.root, keys.root, now, pckCAYears, func(t *x509.Certificate) {
		t.IsCA = true
		t.MaxPathLenZero = true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
	if err != nil {
		return c, fmt.Errorf("PCK CA certificate: %w", err)
	}

	extDER, err := ext.Marshal()
	if err != nil {
		return c, fmt.Errorf("PCK certificate: %w", err)
	}
	c.pck, err = issue(PCKCertificateName, &keys.pck.PublicKey, c.pckCA, keys.pckCA, now, pckYears, func(t *x509.Certificate) {
		t.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		t.ExtraExtensions = []pkix.Extension{{Id: sgx.OIDSGXExtensions, Value: extDER}}
	})
	if err != nil {
		return c, fmt.Errorf("PCK certificate: %w", err)
	}

	c.tcbSigning, err = issue(TCBSigningName, &keys.tcbSigning.PublicKey, c.root, keys.root, now, tcbSigningYears, func(t *x509.Certificate) {
		t.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	})
	if err != nil {
		return c, fmt.Errorf("TCB Signing certificate: %w", err)
	}
	return c, nil
}

// issue creates a certificate for pub signed by signer under parent (nil: self-signed). Every
// simulated certificate has an Intel-shaped subject (common name first), a 20-byte serial, a
// subject key ID, basic constraints, and a validity of years from now; set adds the rest.
func issue(cn string, pub *ecdsa.PublicKey, parent *x509.Certificate, signer *ecdsa.PrivateKey,
	now time.Time, years int, set func(*x509.Certificate)) (*x509.Certificate, error) {
	point, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	skid := sha256.Sum256(point)
	t := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oidCommonName, Value: cn},
			{Type: oidOrganization, Value: simulatedOrgWarning},
		}},
		NotBefore:             now,
		NotAfter:              now.AddDate(years, 0, 0),
		BasicConstraintsValid: true,
		SubjectKeyId:          skid[:20],
	}
	set(t)
	if parent == nil {
		parent = t
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// newSerial returns a positive 20-byte serial number, the length Intel's PCK certificates use.
func newSerial() *big.Int {
	var b [20]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	b[0] = b[0]&0x3f | 0x40
	return new(big.Int).SetBytes(b[:])
}

// pemCerts encodes certs as concatenated PEM CERTIFICATE blocks.
func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// signRS signs digest with key and writes r ‖ s, 32 bytes each, big-endian, into dst.
func signRS(dst []byte, key *ecdsa.PrivateKey, digest []byte) error {
	if len(dst) != sgx.SignatureSize {
		return fmt.Errorf("signature buffer: expected %d bytes, found %d", sgx.SignatureSize, len(dst))
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, digest)
	if err != nil {
		return err
	}
	r.FillBytes(dst[:32])
	s.FillBytes(dst[32:])
	return nil
}
