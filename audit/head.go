package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
)

// Head is the newest entry of a log, signed by the deployment root's key. The Coordinator
// shows it in its status and binds its hash into its quotes; a client keeps the last head it saw
// and later requires every log it is shown to extend it.
type Head struct {
	// Seq and Hash name the newest entry.
	Seq  uint64 `json:"seq"`
	Hash Hash   `json:"hash"`
	// Time is when the head was signed, in UTC.
	Time time.Time `json:"time"`
	// Signature is the root key's signature over [Head.Signed] (ECDSA in ASN.1, RSA PKCS #1
	// v1.5 with SHA-256, or Ed25519, by the root's key type).
	Signature []byte `json:"signature"`
}

// headPrefix separates head signatures from every other signature of the root key (which
// otherwise signs only certificates, whose DER never starts with these bytes).
const headPrefix = "cloister-audit-head-v1\n"

// Signed returns the bytes the signature covers: a fixed prefix, the sequence number and time
// (nanoseconds since 1970, UTC) as big-endian 64-bit integers, and the hash.
func (h *Head) Signed() []byte {
	b := make([]byte, 0, len(headPrefix)+16+len(h.Hash))
	b = append(b, headPrefix...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.UnixNano()))
	return append(b, h.Hash[:]...)
}

// Sign signs h with the deployment root's key.
func (h *Head) Sign(key crypto.Signer) error {
	msg := h.Signed()
	var (
		sig []byte
		err error
	)
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, d[:], crypto.SHA256)
	default:
		return fmt.Errorf("audit: sign head: key type %T; expected ECDSA, RSA or Ed25519", pub)
	}
	if err != nil {
		return fmt.Errorf("audit: sign head %d: %w", h.Seq, err)
	}
	h.Signature = sig
	return nil
}

// Verify checks h's signature with the public key of root, the deployment's root
// certificate.
func (h *Head) Verify(root *x509.Certificate) error {
	if h.Time.IsZero() {
		return fmt.Errorf("audit: head %d: no time", h.Seq)
	}
	alg, ok := signatureAlgorithm[root.PublicKeyAlgorithm]
	if !ok {
		return fmt.Errorf("audit: head %d: root key algorithm %v; expected ECDSA, RSA or Ed25519", h.Seq, root.PublicKeyAlgorithm)
	}
	if err := root.CheckSignature(alg, h.Signed(), h.Signature); err != nil {
		return fmt.Errorf("audit: head %d (hash %s): signature does not verify with the deployment root %q: %w", h.Seq, h.Hash, root.Subject.CommonName, err)
	}
	return nil
}

// signatureAlgorithm is how heads are signed for each root key type; x509 hashes with SHA-256.
var signatureAlgorithm = map[x509.PublicKeyAlgorithm]x509.SignatureAlgorithm{
	x509.ECDSA:   x509.ECDSAWithSHA256,
	x509.RSA:     x509.SHA256WithRSA,
	x509.Ed25519: x509.PureEd25519,
}
