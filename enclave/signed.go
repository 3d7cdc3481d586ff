package enclave

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
)

// Signed is a parsed, verified and valid signed enclave manifest. Its fields
// must not be modified; then it is safe for concurrent use.
type Signed struct {
	// Manifest is the decoded manifest; it passed [Manifest.Validate].
	Manifest *Manifest
	// Raw holds the exact signed bytes: the "manifest" value as it appears
	// in the file, without the white space around it.
	Raw []byte
	// Signer is the public key that made Signature; 3072-bit, exponent 3.
	Signer *rsa.PublicKey
	// Signature is the 384-byte PKCS #1 v1.5 SHA-256 signature over Raw.
	Signature []byte
}

// MRSigner returns the SGX signer identity of s.Signer; see [MRSigner].
func (s *Signed) MRSigner() [32]byte { return MRSigner(s.Signer) }

// Digest returns the SHA-256 digest of s.Raw, the signed manifest bytes.
func (s *Signed) Digest() [32]byte { return sha256.Sum256(s.Raw) }

// envelope is the top-level object of a signed file.
type envelope struct {
	Manifest  json.RawMessage `json:"manifest"`
	Signer    signerJSON      `json:"signer"`
	Signature string          `json:"signature"`
}

type signerJSON struct {
	Modulus  string `json:"modulus"`
	Exponent int    `json:"exponent"`
}

// Sign returns the signed enclave manifest file for m: the canonical
// encoding of m (encoding/json of the struct, with Files and ProtectedFiles
// sorted by path) signed with key. The output is a function of m and key
// only. m itself is not modified. Sign fails with an error wrapping
// [ErrInvalid] if key is not RSA-3072 with exponent 3 or if the sorted
// manifest does not pass [Manifest.Validate].
func Sign(m *Manifest, key *rsa.PrivateKey) ([]byte, error) {
	if err := checkPublicKey(&key.PublicKey); err != nil {
		return nil, fmt.Errorf("enclave: signing key: %w", err)
	}
	c := *m
	c.Files = slices.SortedFunc(slices.Values(m.Files), func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	if c.Files == nil {
		c.Files = []File{}
	}
	c.ProtectedFiles = slices.SortedFunc(slices.Values(m.ProtectedFiles),
		func(a, b ProtectedFile) int { return cmp.Compare(a.Path, b.Path) })
	if err := c.Validate(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("enclave: encoding manifest: %w", err)
	}
	sum := sha256.Sum256(raw)
	// PKCS #1 v1.5 signing is deterministic and needs no randomness.
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return nil, fmt.Errorf("enclave: signing manifest: %w", err)
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 2*len(sig) + 2*KeyBits/8 + 96)
	out.WriteString(`{"manifest":`)
	out.Write(raw)
	out.WriteString(`,"signer":{"modulus":"`)
	out.WriteString(hex.EncodeToString(key.N.FillBytes(make([]byte, KeyBits/8))))
	out.WriteString(`","exponent":` + strconv.Itoa(key.E) + `},"signature":"`)
	out.WriteString(hex.EncodeToString(sig))
	out.WriteString("\"}\n")
	return out.Bytes(), nil
}

// Parse reads a signed enclave manifest file of at most [MaxSize] bytes. In
// order it decodes the envelope strictly, checks that the signer is RSA-3072
// with exponent 3, verifies the signature over the exact bytes of the
// "manifest" value, rejects duplicate or case-folded keys anywhere in the
// file, decodes the manifest strictly and validates it. Its errors wrap
// [ErrTooLarge], [ErrMalformed], [ErrSignature] or [ErrInvalid].
func Parse(b []byte) (*Signed, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: signed manifest: expected at most %d bytes, found %d", ErrTooLarge, MaxSize, len(b))
	}
	var env envelope
	if err := decodeStrict(b, &env); err != nil {
		return nil, fmt.Errorf("%w: signed manifest: %w", ErrMalformed, err)
	}
	pub, err := env.Signer.publicKey()
	if err != nil {
		return nil, fmt.Errorf("enclave: signer: %w", err)
	}
	sig := make([]byte, KeyBits/8)
	if err := decodeHex(sig, []byte(env.Signature), "signature"); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(env.Manifest)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("%w: manifest sha-256 %x, signer mrsigner %x", ErrSignature, sum, MRSigner(pub))
	}
	if err := checkKeys(b, "manifest", "env"); err != nil {
		return nil, fmt.Errorf("%w: signed manifest: %w", ErrMalformed, err)
	}
	m := new(Manifest)
	if err := decodeStrict(env.Manifest, m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &Signed{Manifest: m, Raw: env.Manifest, Signer: pub, Signature: sig}, nil
}

// publicKey returns the signer as an RSA public key, checking that it is
// 3072-bit with exponent 3.
func (s *signerJSON) publicKey() (*rsa.PublicKey, error) {
	mod := make([]byte, KeyBits/8)
	if err := decodeHex(mod, []byte(s.Modulus), "modulus"); err != nil {
		return nil, err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(mod), E: s.Exponent}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}
