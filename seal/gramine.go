package seal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"os"
)

const (
	// KindSGXMRSigner is the Kind of a [Gramine] sealer.
	KindSGXMRSigner = "sgx-mrsigner"
	// GramineMRSignerKeyPath is where Gramine exposes the enclave's 16-byte
	// SGX sealing key bound to MRSIGNER.
	GramineMRSignerKeyPath = "/dev/attestation/keys/_sgx_mrsigner"
	// GramineRawKeySize is the size in bytes of the key Gramine exposes.
	GramineRawKeySize = 16
	// gramineHKDFInfo separates this derivation from any other use of the
	// sealing key.
	gramineHKDFInfo = "cloister-seal-v1"
)

// Gramine is a [Sealer] whose key is derived from the SGX MRSIGNER sealing
// key of the enclave it runs in: only an enclave with the same signer
// (MRSIGNER) on the same CPU can unseal what it seals. It is safe for
// concurrent use.
type Gramine struct {
	aeadSealer
}

var _ Sealer = (*Gramine)(nil)

// NewGramine reads the 16-byte raw sealing key from keyPath (""
// means [GramineMRSignerKeyPath]) and derives the AES-256-GCM key from it
// with HKDF-SHA256 (no salt, info "cloister-seal-v1"). A file of any other
// size is an error. The raw and derived keys are never logged or put in
// errors.
func NewGramine(keyPath string) (*Gramine, error) {
	if keyPath == "" {
		keyPath = GramineMRSignerKeyPath
	}
	// A plain open: Gramine's pseudo-filesystem emulates only simple calls,
	// and the path is configuration, not outside input.
	f, err := os.Open(keyPath)
	if err != nil {
		return nil, fmt.Errorf("seal: Gramine sealing key (is this running inside Gramine with SGX?): %w", err)
	}
	raw, err := readKey(f, GramineRawKeySize)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("seal: Gramine sealing key %s (is this running inside Gramine with SGX?): %w", keyPath, err)
	}
	key, err := hkdf.Key(sha256.New, raw, nil, gramineHKDFInfo, KeySize)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving the sealing key: %w", err)
	}
	core, err := newAEADSealer(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	return &Gramine{aeadSealer: core}, nil
}

// Seal implements [Sealer].
func (g *Gramine) Seal(plaintext, additionalData []byte) ([]byte, error) {
	return g.seal(plaintext, additionalData)
}

// Unseal implements [Sealer].
func (g *Gramine) Unseal(sealed, additionalData []byte) ([]byte, error) {
	return g.unseal(sealed, additionalData)
}

// Kind returns [KindSGXMRSigner].
func (g *Gramine) Kind() string { return KindSGXMRSigner }
