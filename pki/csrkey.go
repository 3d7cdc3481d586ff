package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// CSRKey returns the public key of a DER certificate signing request and its DER
// SubjectPublicKeyInfo, without checking the request's self-signature. It is for callers that
// have better proof of possession than that signature: the Coordinator receives the hash of the
// key inside an attested enclave's quote, and the enclave made the key. The request must be
// well-formed DER of at most MaxCSRSize bytes, and its key of a type ParseCSR accepts.
func CSRKey(der []byte) (crypto.PublicKey, []byte, error) {
	csr, err := ParseCSRUnsigned(der)
	if err != nil {
		return nil, nil, err
	}
	return csr.PublicKey, csr.RawSubjectPublicKeyInfo, nil
}

// ParseCSRUnsigned is CSRKey returning the whole parsed request (its requested names too),
// still without checking its self-signature.
func ParseCSRUnsigned(der []byte) (*x509.CertificateRequest, error) {
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
	return csr, nil
}
