package attest

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"time"
)

// ExporterLabel is the TLS exporter label that binds an activation quote to its connection.
const ExporterLabel = "EXPORTER-cloister-activation"

// coordinatorReportPrefix separates the Coordinator's report data from every other hash.
const coordinatorReportPrefix = "cloister-coordinator-report-v2\x00"

// CoordinatorReportData is the report data of a Coordinator quote. Its first half is SHA-256
// of a fixed prefix, SHA-256 of the Coordinator's TLS public key (DER SubjectPublicKeyInfo),
// and the audit log's head when the quote was made: its entry number (8 bytes, big-endian)
// and hash (headSeq and headHash of an audit.Head); its second half is the verifier's nonce.
// So a verified quote proves the TLS key, the freshness and the log the enclave held.
func CoordinatorReportData(spki []byte, nonce [32]byte, headSeq uint64, headHash [32]byte) [64]byte {
	key := sha256.Sum256(spki)
	h := sha256.New()
	h.Write([]byte(coordinatorReportPrefix))
	h.Write(key[:])
	h.Write(binary.BigEndian.AppendUint64(nil, headSeq))
	h.Write(headHash[:])
	var rd [64]byte
	h.Sum(rd[:0])
	copy(rd[32:], nonce[:])
	return rd
}

// coordinatorEpochPrefix separates the report data of the Coordinator's shared epoch quotes
// from its per-nonce quotes and every other hash.
const coordinatorEpochPrefix = "cloister-coordinator-epoch-v1\x00"

// EpochLength is the length of an epoch of the Coordinator's shared quote: the Coordinator
// makes one quote per epoch, which every launcher verifies instead of asking for its own.
const EpochLength = time.Minute

// EpochAt returns the epoch that t is in: whole [EpochLength]s since the Unix epoch (0 before it).
func EpochAt(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s) / uint64(EpochLength/time.Second)
}

// CoordinatorEpochReportData is the report data of the Coordinator's shared quote for an
// epoch. Its first half is SHA-256 of a fixed prefix (not [CoordinatorReportData]'s), SHA-256 of
// the Coordinator's TLS public key (DER SubjectPublicKeyInfo), the epoch (8 bytes, big-endian)
// and the audit log's head when the quote was made (as in CoordinatorReportData); its second
// half is zero. No verifier's nonce is in it: it proves that the enclave held the TLS key, and
// the log, in that epoch, and a verifier learns that the enclave holds the key still from a TLS
// handshake with it (see docs/architecture.md, "Shared epoch quotes").
func CoordinatorEpochReportData(spki []byte, epoch uint64, headSeq uint64, headHash [32]byte) [64]byte {
	key := sha256.Sum256(spki)
	h := sha256.New()
	h.Write([]byte(coordinatorEpochPrefix))
	h.Write(key[:])
	h.Write(binary.BigEndian.AppendUint64(nil, epoch))
	h.Write(binary.BigEndian.AppendUint64(nil, headSeq))
	h.Write(headHash[:])
	var rd [64]byte
	h.Sum(rd[:0])
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
