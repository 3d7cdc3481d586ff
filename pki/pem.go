package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

const (
	// MaxCertsPEMSize bounds the input of ParseCertsPEM and ParseCA's
	// certificate: 1 MiB.
	MaxCertsPEMSize = 1 << 20
	// MaxKeyPEMSize bounds the input of ParseKeyPEM: 64 KiB.
	MaxKeyPEMSize = 64 << 10

	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemPublicKey   = "PUBLIC KEY"
)

// EncodeCertPEM returns the certificates as consecutive PEM "CERTIFICATE"
// blocks, in the order given.
func EncodeCertPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// EncodeKeyPEM returns key as a PEM "PRIVATE KEY" block (PKCS #8). It fails
// for keys that cannot be exported, such as keys held in hardware.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding %T as PKCS #8: %w", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// EncodePublicKeyPEM returns pub as a PEM "PUBLIC KEY" block (PKIX
// SubjectPublicKeyInfo).
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding %T as PKIX: %w", pub, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParseCertsPEM parses one or more PEM "CERTIFICATE" blocks (at most
// MaxCertsPEMSize bytes in all). Only whitespace may surround the blocks;
// other block types, PEM headers and stray text are errors.
func ParseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	if len(b) > MaxCertsPEMSize {
		return nil, fmt.Errorf("pki: certificate PEM is %d bytes, at most %d allowed", len(b), MaxCertsPEMSize)
	}
	blocks, err := pemBlocks(b, pemCertificate)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, der := range blocks {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pki: certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// ParseKeyPEM parses exactly one PEM "PRIVATE KEY" block (PKCS #8, at most
// MaxKeyPEMSize bytes) holding an ECDSA, RSA or Ed25519 private key.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	if len(b) > MaxKeyPEMSize {
		return nil, fmt.Errorf("pki: key PEM is %d bytes, at most %d allowed", len(b), MaxKeyPEMSize)
	}
	blocks, err := pemBlocks(b, pemPrivateKey)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("pki: found %d private keys, expected exactly 1", len(blocks))
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[0])
	if err != nil {
		// The parser's errors describe structure, never key bytes.
		return nil, fmt.Errorf("pki: parsing PKCS #8 private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: private key of type %T cannot sign", key)
	}
	return signer, nil
}

// pemBlocks returns the DER contents of the PEM blocks in b, each of which
// must have type typ and no headers, with only whitespace around them.
func pemBlocks(b []byte, typ string) ([][]byte, error) {
	var ders [][]byte
	rest := b
	for {
		trimmed := bytes.TrimLeft(rest, " \t\r\n")
		if len(trimmed) == 0 {
			break
		}
		offset := len(b) - len(trimmed)
		if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
			return nil, fmt.Errorf("pki: expected a PEM %q block at byte %d, found other data", typ, offset)
		}
		block, next := pem.Decode(trimmed)
		// pem.Decode skips a malformed block and returns a later one; the
		// block it returns must be the one that starts here.
		consumed := trimmed[:len(trimmed)-len(next)]
		if block == nil || bytes.LastIndex(consumed, []byte("-----BEGIN ")) != 0 {
			return nil, fmt.Errorf("pki: malformed PEM block at byte %d", offset)
		}
		if block.Type != typ {
			return nil, fmt.Errorf("pki: PEM block at byte %d is %q, expected %q", offset, block.Type, typ)
		}
		if len(block.Headers) != 0 {
			return nil, fmt.Errorf("pki: PEM block at byte %d has headers, expected none", offset)
		}
		ders = append(ders, block.Bytes)
		rest = next
	}
	if len(ders) == 0 {
		return nil, fmt.Errorf("pki: no PEM %q block found", typ)
	}
	return ders, nil
}

// Marshal returns the CA's certificate and private key as PEM
// (see EncodeCertPEM and EncodeKeyPEM). The key PEM is secret.
func (ca *CA) Marshal() (certPEM, keyPEM []byte, err error) {
	keyPEM, err = EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, nil, err
	}
	return EncodeCertPEM(ca.Cert), keyPEM, nil
}

// ParseCA is the inverse of [CA.Marshal]: certPEM must hold exactly one CA
// certificate allowed to sign certificates, and keyPEM its ECDSA P-256
// private key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("pki: CA PEM holds %d certificates, expected exactly 1", len(certs))
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: certificate %q is not a CA allowed to sign certificates", cert.Subject.CommonName)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key}
	if err := checkCAKey(ca); err != nil {
		return nil, err
	}
	return ca, nil
}
