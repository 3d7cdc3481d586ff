package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// IntelRoot returns the Intel SGX Root CA certificate (CN=Intel SGX Root CA, valid until
// 2049-12-31, SPKI SHA-256 a0af0312…a49e), embedded in the package. Each call returns a new
// copy.
func IntelRoot() *x509.Certificate {
	block, _ := pem.Decode(intelRootPEM)
	if block == nil {
		panic("verify: embedded Intel SGX root is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("verify: embedded Intel SGX root: " + err.Error())
	}
	return c
}

// Default cache sizes (entries); see [WithCacheSize] and [WithCollateralCacheSize].
const (
	DefaultCacheSize           = 4096
	DefaultCollateralCacheSize = 64
)

// Option configures a Verifier.
type Option func(*options)

type options struct {
	cacheSize, collateralCacheSize int
}

// WithCacheSize bounds the caches of verified PCK chains and verified signatures (QE reports,
// certificates, CRLs) to n entries each. The default is [DefaultCacheSize]; n <= 0 disables
// them.
func WithCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// WithCollateralCacheSize bounds the cache of verified collateral sets to n entries. The
// default is [DefaultCollateralCacheSize] (a set per FMSPC and CA type in use, plus updates);
// n <= 0 disables it.
func WithCollateralCacheSize(n int) Option { return func(o *options) { o.collateralCacheSize = n } }

// Verifier verifies SGX quotes and collateral against one pinned root key. It is safe for
// concurrent use.
//
// It caches what does not depend on a quote's own signature: verified collateral (keyed by a
// hash of all its bytes), verified PCK chains (keyed by SHA-256 of the certification data) and
// verified QE report, certificate and CRL signatures (keyed by a hash of the signed bytes, the
// signature and the signer). Caches are bounded; checks against the verification time run on
// every call.
type Verifier struct {
	root     *x509.Certificate
	rootKey  interface{ Equal(crypto.PublicKey) bool }
	rootSPKI [32]byte

	pcks        *cache[*pckState]
	collaterals *cache[*colState]
	sigs        *cache[struct{}]
}

// New returns a Verifier that trusts chains ending in a self-signed certificate with root's
// public key. The key is pinned, not the certificate: Intel re-issued its root certificate with
// the same key, and quotes carry either. Roots carried by quotes or collateral are never trusted
// for themselves. New panics if root is nil, has no DER encoding or an unsupported key.
func New(root *x509.Certificate, opts ...Option) *Verifier {
	if root == nil {
		panic("verify.New: nil root certificate")
	}
	own, err := x509.ParseCertificate(root.Raw)
	if err != nil {
		panic(fmt.Sprintf("verify.New: root certificate: %v", err))
	}
	key, ok := own.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		panic(fmt.Sprintf("verify.New: root certificate has an unsupported %v key", own.PublicKeyAlgorithm))
	}
	o := options{cacheSize: DefaultCacheSize, collateralCacheSize: DefaultCollateralCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	return &Verifier{
		root:        own,
		rootKey:     key,
		rootSPKI:    sha256.Sum256(own.RawSubjectPublicKeyInfo),
		pcks:        newCache[*pckState](o.cacheSize),
		collaterals: newCache[*colState](o.collateralCacheSize),
		sigs:        newCache[struct{}](o.cacheSize),
	}
}

// Root returns a copy of the pinned root certificate.
func (v *Verifier) Root() *x509.Certificate {
	c, _ := x509.ParseCertificate(v.root.Raw)
	return c
}
