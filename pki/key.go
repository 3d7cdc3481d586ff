package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Key algorithm names accepted by [GenerateKey].
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyECDSAP384 = "ecdsa-p384"
	KeyRSA2048   = "rsa-2048"
	KeyRSA3072   = "rsa-3072"
	KeyRSA4096   = "rsa-4096"
	KeyEd25519   = "ed25519"
)

// keyAlgorithms lists the GenerateKey names in the order errors show them.
var keyAlgorithms = []string{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519}

const (
	// MaxCSRSize bounds the DER input of ParseCSR: 16 KiB.
	MaxCSRSize = 16 << 10
	// minRSABits and maxRSABits bound accepted RSA moduli; the upper bound
	// keeps signature checks on outside input cheap.
	minRSABits = 2048
	maxRSABits = 8192
	// allowedKeys describes checkPublicKey's rule in errors.
	allowedKeys = "allowed: ECDSA P-256 or P-384, RSA of 2048 to 8192 bits, Ed25519"
)

// GenerateKey makes a new private key. alg is one of KeyECDSAP256,
// KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096 or KeyEd25519; any other
// name is an error that lists the valid ones.
func GenerateKey(alg string) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case KeyECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("pki: unknown key algorithm %q; valid: %s", alg, strings.Join(keyAlgorithms, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("pki: generating %s key: %w", alg, err)
	}
	return key, nil
}

// ParseCSR parses a DER certificate signing request of at most MaxCSRSize
// bytes, checks that its key is ECDSA P-256/P-384, RSA of 2048 to 8192 bits or
// Ed25519, and checks its self-signature. Errors say what was found.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	switch {
	case len(der) == 0:
		return nil, errors.New("pki: CSR is empty, expected DER")
	case len(der) > MaxCSRSize:
		return nil, fmt.Errorf("pki: CSR is %d bytes, at most %d allowed", len(der), MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CSR (DER expected): %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("pki: CSR key: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: CSR signature does not verify with its own key: %w", err)
	}
	return csr, nil
}

// checkPublicKey accepts the key types allowed for workload certificates.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("found ECDSA on curve %s; %s", k.Curve.Params().Name, allowedKeys)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("found RSA of %d bits; %s", bits, allowedKeys)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("found Ed25519 key of %d bytes; %s", len(k), allowedKeys)
		}
	case nil:
		return fmt.Errorf("found no key; %s", allowedKeys)
	default:
		return fmt.Errorf("found key type %T; %s", pub, allowedKeys)
	}
	return nil
}
