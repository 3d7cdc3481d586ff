// Package seal protects a small secret, the Coordinator's data key, so that
// only the same enclave identity can read it back.
//
// A [Sealer] encrypts with AES-256-GCM under a key it never reveals. Two
// implementations exist:
//
//   - [Gramine] derives its key from the SGX MRSIGNER sealing key that Gramine
//     exposes at [GramineMRSignerKeyPath]; data it seals can be unsealed only by
//     an enclave of the same signer on the same CPU.
//   - [Simulated] keeps its key in a plain file next to the data. It exists so
//     that the rest of Cloister runs unchanged on machines without SGX, and it
//     protects NOTHING: anyone who can read the sealed data can read the key.
//
// # Sealed format
//
// Every sealer writes the same self-describing format (version 1):
//
//	offset  size  field
//	0       1     version, 0x01
//	1       12    nonce, random for every Seal
//	13      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then the tag
//
// The GCM additional data is the version byte followed by the caller's
// additional data, so a sealed blob cannot be replayed under another purpose or
// another format version. Unseal fails closed with [ErrMalformed] or
// [ErrAuthentication]; it never returns unauthenticated bytes.
//
// This package does not store sealed data, rotate keys, or hold recovery
// shares; the store and recovery packages build on it.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sealer encrypts and authenticates small secrets under a key bound to the
// platform or enclave identity. Implementations are safe for concurrent use.
type Sealer interface {
	// Seal encrypts plaintext (at most MaxPlaintextSize bytes) and binds
	// additionalData to the result; the same additionalData must be given to
	// Unseal.
	Seal(plaintext, additionalData []byte) ([]byte, error)
	// Unseal authenticates and decrypts data produced by Seal with the same
	// key and additionalData. Errors wrap ErrMalformed or ErrAuthentication.
	Unseal(sealed, additionalData []byte) ([]byte, error)
	// Kind names the key source, e.g. "simulation" or "sgx-mrsigner"; it is
	// recorded next to sealed data so that a mismatch is reported clearly.
	Kind() string
}

const (
	// FormatVersion is the first byte of every sealed blob.
	FormatVersion byte = 1
	// NonceSize is the size in bytes of the random GCM nonce.
	NonceSize = 12
	// TagSize is the size in bytes of the GCM authentication tag.
	TagSize = 16
	// Overhead is how many bytes Seal adds to the plaintext.
	Overhead = 1 + NonceSize + TagSize
	// MaxPlaintextSize bounds what Seal accepts and, plus Overhead, what
	// Unseal accepts: 1 MiB. Sealers protect keys, not bulk data.
	MaxPlaintextSize = 1 << 20
	// KeySize is the AES-256 key size in bytes used by every sealer.
	KeySize = 32
)

var (
	// ErrMalformed means the sealed input is not in the sealed format: too
	// short, too long, or of an unknown version.
	ErrMalformed = errors.New("seal: malformed sealed data")
	// ErrAuthentication means the sealed data did not authenticate: it was
	// sealed under another key or with other additional data, or it was
	// modified.
	ErrAuthentication = errors.New("seal: authentication failed (wrong key, wrong additional data, or modified data)")
)

// aeadSealer is the AES-256-GCM core shared by every Sealer.
type aeadSealer struct {
	aead cipher.AEAD // random-nonce GCM: output is nonce ‖ ciphertext ‖ tag
	id   string      // see KeyID
}

// keyIDInfo separates the key ID's derivation from the sealing key's use.
const keyIDInfo = "cloister-seal-key-id-v1"

// KeyID names the sealing key without revealing it: 16 bytes of HKDF-SHA256 of the key (info
// "cloister-seal-key-id-v1"), in hex. Two sealers have the same ID exactly when they seal under
// the same key (the same CPU and signer, or the same simulated key file), so data sealed by
// several keys can be kept side by side under their IDs.
func (s aeadSealer) KeyID() string { return s.id }

func newAEADSealer(key []byte) (aeadSealer, error) {
	if len(key) != KeySize {
		return aeadSealer{}, fmt.Errorf("seal: key is %d bytes, expected %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return aeadSealer{}, fmt.Errorf("seal: creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return aeadSealer{}, fmt.Errorf("seal: creating GCM: %w", err)
	}
	id, err := hkdf.Key(sha256.New, key, nil, keyIDInfo, 16)
	if err != nil {
		return aeadSealer{}, fmt.Errorf("seal: deriving the key ID: %w", err)
	}
	return aeadSealer{aead: aead, id: hex.EncodeToString(id)}, nil
}

func (s aeadSealer) seal(plaintext, additionalData []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("seal: plaintext is %d bytes, at most %d allowed", len(plaintext), MaxPlaintextSize)
	}
	out := make([]byte, 1, Overhead+len(plaintext))
	out[0] = FormatVersion
	return s.aead.Seal(out, nil, plaintext, sealAD(additionalData)), nil
}

func (s aeadSealer) unseal(sealed, additionalData []byte) ([]byte, error) {
	switch {
	case len(sealed) < Overhead:
		return nil, fmt.Errorf("%w: %d bytes, expected at least %d", ErrMalformed, len(sealed), Overhead)
	case len(sealed) > Overhead+MaxPlaintextSize:
		return nil, fmt.Errorf("%w: %d bytes, expected at most %d", ErrMalformed, len(sealed), Overhead+MaxPlaintextSize)
	case sealed[0] != FormatVersion:
		return nil, fmt.Errorf("%w: version %d, expected %d", ErrMalformed, sealed[0], FormatVersion)
	}
	plaintext, err := s.aead.Open(nil, nil, sealed[1:], sealAD(additionalData))
	if err != nil {
		return nil, ErrAuthentication
	}
	return plaintext, nil
}

// sealAD is the GCM additional data: the version byte, then the caller's.
func sealAD(additionalData []byte) []byte {
	ad := make([]byte, 0, 1+len(additionalData))
	ad = append(ad, FormatVersion)
	return append(ad, additionalData...)
}
