package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/cloister-dev/cloister/sgx"
)

// ParseCRL parses a certificate revocation list of at most [MaxCollateralItemSize] bytes, DER
// or PEM ("X509 CRL"), told apart by content. It does not verify the signature.
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	if len(b) > MaxCollateralItemSize {
		return nil, fmt.Errorf("CRL: %d bytes is larger than the %d allowed", len(b), MaxCollateralItemSize)
	}
	der := b
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		if block == nil {
			return nil, errors.New("CRL: malformed PEM block")
		}
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL: PEM block has type %q; expected \"X509 CRL\"", block.Type)
		}
		if len(bytes.Trim(rest, " \t\r\n")) != 0 {
			return nil, errors.New("CRL: unexpected bytes after the PEM block")
		}
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if len(crl.Raw) != len(der) {
		return nil, fmt.Errorf("CRL: %d bytes after the DER encoding; expected none", len(der)-len(crl.Raw))
	}
	return crl, nil
}

// ParseCertChain parses a PEM certificate chain of at most [MaxCollateralItemSize] bytes, such
// as a PCS issuer-chain header, and returns it leaf first. The chain must be linear; only
// whitespace may surround the PEM blocks. It does not verify signatures.
func ParseCertChain(pemChain []byte) ([]*x509.Certificate, error) {
	if len(pemChain) > MaxCollateralItemSize {
		return nil, fmt.Errorf("certificate chain: %d bytes is larger than the %d allowed", len(pemChain), MaxCollateralItemSize)
	}
	if bytes.IndexByte(pemChain, 0) >= 0 {
		return nil, errors.New("certificate chain: unexpected NUL byte; expected PEM text")
	}
	chain, err := sgx.ParsePCKChain(pemChain)
	if err != nil {
		return nil, fmt.Errorf("certificate chain: %w", err)
	}
	return chain, nil
}

// chainSpec is the shape a certificate chain must have.
type chainSpec struct {
	what   string // for errors, e.g. "PCK certificate chain"
	length int    // number of certificates, root included
	leafCN string // substring the leaf's common name must contain (Intel's and simulated names)
	leafCA bool   // whether the leaf is a CA (the PCK CRL issuer) or a signing leaf
}

var (
	pckChainSpec     = chainSpec{"PCK certificate chain (PCK certificate, PCK CA, root CA)", 3, "SGX PCK Certificate", false}
	signingChainSpec = chainSpec{"signing chain (TCB Signing certificate, root CA)", 2, "SGX TCB Signing", false}
	pckCRLChainSpec  = chainSpec{"PCK CRL issuer chain (PCK CA, root CA)", 2, "SGX PCK", true}
)

// verifyChain checks that chain (leaf first) has the shape of spec, that each certificate is
// issued and signed by the next, and that the last one is self-signed and carries the pinned
// root key. It does not check validity periods: those are reported, not enforced.
func (v *Verifier) verifyChain(chain []*x509.Certificate, spec chainSpec) error {
	if len(chain) != spec.length {
		return fmt.Errorf("%s: expected %d certificates, found %d", spec.what, spec.length, len(chain))
	}
	leaf := chain[0]
	if !strings.Contains(leaf.Subject.CommonName, spec.leafCN) {
		return fmt.Errorf("%s: leaf common name %q does not contain %q", spec.what, leaf.Subject.CommonName, spec.leafCN)
	}
	if leaf.IsCA != spec.leafCA {
		return fmt.Errorf("%s: leaf %q has CA=%t; expected CA=%t", spec.what, leaf.Subject.CommonName, leaf.IsCA, spec.leafCA)
	}
	if !spec.leafCA && leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%s: leaf %q key usage does not allow digital signatures", spec.what, leaf.Subject.CommonName)
	}
	// The pinned key first: no signature work for chains that cannot be trusted.
	root := chain[len(chain)-1]
	if !v.rootKey.Equal(root.PublicKey) {
		return fmt.Errorf("%s: %w: root %q (SPKI SHA-256 %x) is not the pinned root key (SPKI SHA-256 %x)",
			spec.what, ErrUntrustedRoot, root.Subject.CommonName, sha256.Sum256(root.RawSubjectPublicKeyInfo), v.rootSPKI)
	}
	if !bytes.Equal(root.RawIssuer, root.RawSubject) {
		return fmt.Errorf("%s: %w: root %q is issued by %q; expected a self-issued root", spec.what, ErrUntrustedRoot, root.Subject.CommonName, root.Issuer.CommonName)
	}
	for i, c := range chain {
		if len(c.UnhandledCriticalExtensions) > 0 {
			return fmt.Errorf("%s: certificate %q has unhandled critical extension %v", spec.what, c.Subject.CommonName, c.UnhandledCriticalExtensions[0])
		}
		if i == 0 {
			continue
		}
		child := chain[i-1]
		if !bytes.Equal(child.RawIssuer, c.RawSubject) {
			return fmt.Errorf("%s: %q is issued by %q, not by the next certificate %q", spec.what, child.Subject.CommonName, child.Issuer.CommonName, c.Subject.CommonName)
		}
		// c has i-1 CA certificates below it (the leaf is not counted).
		if c.MaxPathLen >= 0 && i-1 > c.MaxPathLen && (c.MaxPathLen > 0 || c.MaxPathLenZero) {
			return fmt.Errorf("%s: %q allows %d intermediate CAs below it, found %d", spec.what, c.Subject.CommonName, c.MaxPathLen, i-1)
		}
		if err := v.checkCertSignature(child, c); err != nil {
			return fmt.Errorf("%s: %q is not validly signed by %q: %w", spec.what, child.Subject.CommonName, c.Subject.CommonName, err)
		}
	}
	if err := v.checkCertSignature(root, root); err != nil {
		return fmt.Errorf("%s: %w: root %q is not validly self-signed: %w", spec.what, ErrUntrustedRoot, root.Subject.CommonName, err)
	}
	return nil
}

// checkCertSignature checks child's signature and parent's CA constraints, remembering success.
func (v *Verifier) checkCertSignature(child, parent *x509.Certificate) error {
	key := newDigester("cert-signature").add(child.Raw).add(parent.Raw).sum()
	if _, ok := v.sigs.get(key); ok {
		return nil
	}
	if err := child.CheckSignatureFrom(parent); err != nil {
		if _, ok := errors.AsType[x509.ConstraintViolationError](err); ok {
			return err
		}
		return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	v.sigs.put(key, struct{}{})
	return nil
}

// checkCRLSignature checks that issuer issued and signed crl, remembering success.
func (v *Verifier) checkCRLSignature(crl *x509.RevocationList, issuer *x509.Certificate) error {
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("CRL issuer %q is not %q", crl.Issuer.CommonName, issuer.Subject.CommonName)
	}
	key := newDigester("crl-signature").add(crl.Raw).add(issuer.Raw).sum()
	if _, ok := v.sigs.get(key); ok {
		return nil
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("CRL of %q: %w: %w", issuer.Subject.CommonName, ErrInvalidSignature, err)
	}
	v.sigs.put(key, struct{}{})
	return nil
}

// p256Key returns the P-256 ECDSA key of a certificate.
func p256Key(c *x509.Certificate) (*ecdsa.PublicKey, error) {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("certificate %q has a %v key; expected ECDSA P-256", c.Subject.CommonName, c.PublicKeyAlgorithm)
	}
	return k, nil
}

// verifyRS checks an ECDSA signature r ‖ s over SHA-256(msg).
func verifyRS(k *ecdsa.PublicKey, msg []byte, sig *[sgx.SignatureSize]byte) bool {
	digest := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(k, digest[:], r, s)
}

// serialKey is the map key of a certificate serial number in a set of revoked serials.
func serialKey(n *big.Int) string { return n.Text(16) }
