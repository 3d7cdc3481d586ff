package attested

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
)

// WorkloadKey is a workload instance's new private key and the certificate signing request
// that carries its public key to the Coordinator in [MeshSession.Activate].
type WorkloadKey struct {
	// Key is an ECDSA P-256 key. Only the workload holds it: the Coordinator certifies it
	// because an activation's quote binds the hash of its public key.
	Key *ecdsa.PrivateKey
	// CSR is the DER certificate signing request for Key, with the workload's name as common
	// name and any DNS names requested; the Coordinator takes the key and the requested names
	// the manifest allows from it.
	CSR []byte
	// SPKI is Key's public key as DER SubjectPublicKeyInfo, the bytes an activation's quote
	// binds (attest.ActivationReportData). Activate derives it from CSR; it is here for those
	// who make evidence themselves.
	SPKI []byte
}

// NewWorkloadKey makes a new workload key and a CSR for it, naming workload. It is safe for
// concurrent use.
func NewWorkloadKey(workload string) (*WorkloadKey, error) {
	return NewWorkloadKeyDNS(workload, nil)
}

// NewWorkloadKeyDNS is NewWorkloadKey with DNS names requested in the CSR. The Coordinator
// adds each to the certificate only if the manifest allows it for the workload
// (manifest.Manifest.CheckRequestedDNS) and refuses the activation otherwise.
func NewWorkloadKeyDNS(workload string, dnsNames []string) (*WorkloadKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate workload key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: workload}, DNSNames: dnsNames}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR for workload %q: %w", workload, err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode workload public key: %w", err)
	}
	return &WorkloadKey{Key: key, CSR: csr, SPKI: spki}, nil
}
