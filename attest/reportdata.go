package attest

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
)

// ExporterLabel is the TLS exporter label that binds an activation quote to its connection.
const ExporterLabel = "EXPORTER-cloister-activation"

// CoordinatorReportData is the report data of a Coordinator quote: SHA-256 of the Coordinator's
// TLS public key (DER SubjectPublicKeyInfo) followed by the verifier's nonce.
func CoordinatorReportData(spki []byte, nonce [32]byte) [64]byte {
	var rd [64]byte
	h := sha256.Sum256(spki)
	copy(rd[:32], h[:])
	copy(rd[32:], nonce[:])
	return rd
}

// ActivationReportData is the report data of a workload's activation quote: SHA-256 of the CSR's
// public key (DER SubjectPublicKeyInfo) followed by the 32-byte TLS exporter value of the
// activation connection.
func ActivationReportData(csrSPKI []byte, exporter [32]byte) [64]byte {
	var rd [64]byte
	h := sha256.Sum256(csrSPKI)
	copy(rd[:32], h[:])
	copy(rd[32:], exporter[:])
	return rd
}

// Exporter returns the activation exporter value of a TLS connection.
func Exporter(cs *tls.ConnectionState) ([32]byte, error) {
	var out [32]byte
	b, err := cs.ExportKeyingMaterial(ExporterLabel, nil, len(out))
	if err != nil {
		return out, fmt.Errorf("TLS exporter: %w", err)
	}
	copy(out[:], b)
	return out, nil
}
