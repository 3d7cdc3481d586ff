package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"time"
)

const (
	// RootCommonName is the subject common name of every deployment root.
	RootCommonName = "Cloister Root CA"
	// IntermediateCommonNamePrefix prefixes the manifest version in the
	// common name of an intermediate: "Cloister Intermediate CA v3".
	IntermediateCommonNamePrefix = "Cloister Intermediate CA v"
	// SimulationOU is the organizational unit of every certificate issued
	// in simulation mode.
	SimulationOU = "SIMULATION - NOT SECURE"

	// DefaultRootValidity is the root's validity when RootConfig.Validity is
	// zero: 10 years of 365 days.
	DefaultRootValidity = 10 * 365 * 24 * time.Hour
	// DefaultIntermediateValidity is an intermediate's validity when
	// IntermediateConfig.Validity is zero: 365 days.
	DefaultIntermediateValidity = 365 * 24 * time.Hour
	// DefaultLeafValidity is a leaf's validity when LeafConfig.Validity is
	// zero: 24 hours.
	DefaultLeafValidity = 24 * time.Hour
	// Backdate is how far NotBefore is set before the requested start, so
	// that peers whose clocks run slightly behind accept a new certificate.
	Backdate = time.Minute

	// maxCommonNameLength is ub-common-name from RFC 5280.
	maxCommonNameLength = 64
)

// CA is a certificate authority: a CA certificate and its private key.
// A CA is safe for concurrent use if Key is; keys made by this package are.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// RootConfig configures [NewRoot].
type RootConfig struct {
	// TrustDomain is the deployment's SPIFFE trust domain, e.g.
	// "cloister.internal"; it becomes the subject organization. Required.
	TrustDomain string
	// Validity is how long the root is valid; zero means
	// DefaultRootValidity. Negative is an error.
	Validity time.Duration
	// Simulation marks the root and everything it issues with SimulationOU.
	Simulation bool
	// Now is the issuance time; zero means time.Now().
	Now time.Time
}

// NewRoot creates a self-signed root CA with a fresh ECDSA P-256 key:
// subject CN RootCommonName, O TrustDomain, path length 1 (it signs
// intermediates, which sign leaves), a random 128-bit serial and a subject
// key identifier. NotBefore is Now minus Backdate.
func NewRoot(cfg RootConfig) (*CA, error) {
	if err := validateTrustDomain(cfg.TrustDomain); err != nil {
		return nil, err
	}
	notBefore, notAfter, err := validityWindow(nil, cfg.Now, cfg.Validity, DefaultRootValidity)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating root key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               subject(RootCommonName, []string{cfg.TrustDomain}, cfg.Simulation),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IntermediateConfig configures [CA.NewIntermediate].
type IntermediateConfig struct {
	// Version is the manifest version the intermediate belongs to; it
	// appears in the common name. Must be at least 1.
	Version int
	// Validity is how long the intermediate is valid; zero means
	// DefaultIntermediateValidity. NotAfter never exceeds the issuer's.
	Validity time.Duration
	// Now is the issuance time; zero means time.Now().
	Now time.Time
}

// NewIntermediate creates an intermediate CA signed by ca with a fresh ECDSA
// P-256 key: CN "Cloister Intermediate CA v<Version>", the issuer's
// organization and simulation marking, path length 0 (it signs only leaves).
// It fails if ca may not sign CA certificates (path length 0).
func (ca *CA) NewIntermediate(cfg IntermediateConfig) (*CA, error) {
	if cfg.Version < 1 {
		return nil, fmt.Errorf("pki: intermediate version is %d, expected at least 1", cfg.Version)
	}
	if !ca.Cert.IsCA || (ca.Cert.MaxPathLen == 0 && ca.Cert.MaxPathLenZero) {
		return nil, fmt.Errorf("pki: %q may not sign CA certificates (path length 0 or not a CA)", ca.Cert.Subject.CommonName)
	}
	notBefore, notAfter, err := validityWindow(ca.Cert, cfg.Now, cfg.Validity, DefaultIntermediateValidity)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating intermediate key: %w", err)
	}
	cn := IntermediateCommonNamePrefix + strconv.Itoa(cfg.Version)
	tmpl := &x509.Certificate{
		Subject:               subject(cn, ca.Cert.Subject.Organization, IsSimulation(ca.Cert)),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IsSimulation reports whether cert carries the SimulationOU marking.
func IsSimulation(cert *x509.Certificate) bool {
	return cert != nil && slices.Contains(cert.Subject.OrganizationalUnit, SimulationOU)
}

func subject(cn string, org []string, simulation bool) pkix.Name {
	name := pkix.Name{CommonName: cn, Organization: org}
	if simulation {
		name.OrganizationalUnit = []string{SimulationOU}
	}
	return name
}

// validityWindow computes NotBefore and NotAfter for a certificate that
// starts at start (zero means now) and lasts validity (zero means def),
// backdated by Backdate and kept within issuer's validity (nil for a root).
func validityWindow(issuer *x509.Certificate, start time.Time, validity, def time.Duration) (notBefore, notAfter time.Time, err error) {
	switch {
	case validity < 0:
		return notBefore, notAfter, fmt.Errorf("pki: validity is %v, expected a positive duration (or zero for the default %v)", validity, def)
	case validity == 0:
		validity = def
	}
	if start.IsZero() {
		start = time.Now()
	}
	notBefore, notAfter = start.Add(-Backdate), start.Add(validity)
	if issuer != nil {
		if notBefore.Before(issuer.NotBefore) {
			notBefore = issuer.NotBefore
		}
		if notAfter.After(issuer.NotAfter) {
			notAfter = issuer.NotAfter
		}
		if !notAfter.After(start) || !notAfter.After(notBefore) {
			return notBefore, notAfter, fmt.Errorf("pki: requested validity from %s for %v is not within issuer %q's validity [%s, %s]",
				start.UTC().Format(time.RFC3339), validity, issuer.Subject.CommonName,
				issuer.NotBefore.UTC().Format(time.RFC3339), issuer.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return notBefore, notAfter, nil
}

// newSerial returns a uniformly random serial number in [1, 2^128).
func newSerial() *big.Int {
	var b [16]byte
	serial := new(big.Int)
	for serial.Sign() == 0 {
		rand.Read(b[:])
		serial.SetBytes(b[:])
	}
	return serial
}

// sign signs tmpl (given a random serial) with key as parent through
// crypto/x509 and parses the result. Roots and intermediates use it;
// leaves take the faster path in leaf.go.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	tmpl.SerialNumber = newSerial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing the certificate just signed: %w", err)
	}
	return cert, nil
}
