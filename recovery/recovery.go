// Package recovery holds the formats and the cryptography of recovery by key holders: the
// recovery record a Coordinator keeps beside its sealed data key, the share files each holder
// receives, and the signed submissions that hand a share back to a Coordinator that can no
// longer unseal its state.
//
// # Shares
//
// The Coordinator's data key (32 bytes) is split k-of-n with Shamir's scheme over GF(2^8)
// (package internal/shamir; with k = 1 every share is the key itself). Holder i receives share
// i, its y-values (32 bytes), encrypted to the holder's public key from the manifest: RSA-3072
// keys with RSA-OAEP (SHA-256), X25519 keys with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM). The OAEP label, or the HPKE info, is the share's context (see
// [Share.Context]): the deployment, the split's generation, the holder, the index, k and n. A
// share file whose context was changed does not decrypt.
//
// # Submissions
//
// A holder decrypts the share and re-encrypts it to the recovering Coordinator's session key
// (HPKE, X25519), which the Coordinator's quote binds, then authenticates the submission with
// the holder's own key (see [Submission.Message]): RSA holders sign it with RSA-PSS (SHA-256);
// X25519 holders, whose keys cannot sign, MAC it with HMAC-SHA256 under a key derived from
// X25519(holder key, session key), which only the holder and that Coordinator session can
// compute. The message names the session, so a submission is good for one Coordinator process
// in recovery and nothing else. Nobody but a holder can submit a share (MarbleRun's advisory
// GO-2025-3450: recovery data anyone could submit let an attacker choose the key), and each
// share is also checked against its commitment in the recovery record before it counts.
//
// # Trust in the record
//
// The recovery record is kept in plain text (it is needed exactly when the key is sealed
// away), so until the key is back it is only a hint. The key it yields is accepted only if it
// authenticates the whole sealed state (see store.Recover) and the record's MAC under that key;
// a host that replaced the record's keys or commitments can stop a recovery but cannot choose
// the key.
package recovery

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Formats and bounds.
const (
	// RecordVersion is the version of the recovery record.
	RecordVersion = 1
	// ShareFormat names a share file.
	ShareFormat = "cloister-recovery-share-v1"
	// SubmissionFormat names a submission.
	SubmissionFormat = "cloister-recovery-submission-v1"
	// ChallengeFormat names a challenge file (the input of an offline signer).
	ChallengeFormat = "cloister-recovery-challenge-v1"
	// KeySize is the size of the secret split: the store's data key.
	KeySize = 32
	// MaxHolders bounds the holders of one split (shares are numbered by one byte).
	MaxHolders = 255
	// MaxFileSize bounds a share, submission or challenge file.
	MaxFileSize = 256 << 10

	// AlgRSAOAEP and AlgHPKE name how a share is encrypted to its holder.
	AlgRSAOAEP = "RSA-OAEP-3072-SHA256"
	AlgHPKE    = "HPKE-X25519-HKDF-SHA256-AES-256-GCM"
	// AuthRSAPSS and AuthX25519HMAC name how a submission is authenticated.
	AuthRSAPSS     = "RSA-PSS-SHA256"
	AuthX25519HMAC = "X25519-HKDF-HMAC-SHA256"
)

// The forms of identifiers, written out rather than as regexps: this package is linked into
// cloister-launch (through package api), which would compile the patterns at every container
// start (a third of a millisecond) and carry package regexp for nothing else.
var (
	hex64  = lowerHex(64) // ^[0-9a-f]{64}$
	hex32  = lowerHex(32) // ^[0-9a-f]{32}$
	nameRE holderName     // ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$
)

// lowerHex matches exactly that many lowercase hexadecimal digits.
type lowerHex int

// MatchString says whether s is int(h) lowercase hexadecimal digits.
func (h lowerHex) MatchString(s string) bool {
	if len(s) != int(h) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// holderName matches a holder's name: a letter or digit, then up to 63 letters, digits, '.',
// '_' or '-'.
type holderName struct{}

// MatchString says whether s is a holder's name.
func (holderName) MatchString(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// ErrMalformed is matched by the errors of every parser in this package.
var ErrMalformed = errors.New("recovery: malformed input")

func malformed(what, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, what, fmt.Sprintf(format, args...))
}

// Record is what the Coordinator keeps beside its sealed data key about the split in force.
type Record struct {
	Version int `json:"version"`
	// Deployment is the SHA-256 of the deployment root certificate (DER), hex.
	Deployment string `json:"deployment"`
	// Generation names this split: 32 hex digits, random. Every re-split has a new one.
	Generation string    `json:"generation"`
	Threshold  int       `json:"threshold"`
	Created    time.Time `json:"created"`
	// Holders are the share holders, by index (1 to n).
	Holders []Holder `json:"holders"`
	// MAC is HMAC-SHA256 over the record without it, under a key derived from the data key.
	MAC []byte `json:"mac"`
}

// Holder is one share holder of a split.
type Holder struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// PublicKey is the holder's public key, PKIX DER.
	PublicKey []byte `json:"public_key"`
	// Commitment is SHA-256 over the generation, index and share (see commit).
	Commitment []byte `json:"commitment"`
}

// Holder returns the holder called name, or nil.
func (r *Record) Holder(name string) *Holder {
	for i := range r.Holders {
		if r.Holders[i].Name == name {
			return &r.Holders[i]
		}
	}
	return nil
}

// Names returns the holders' names in index order.
func (r *Record) Names() []string {
	out := make([]string, len(r.Holders))
	for i, h := range r.Holders {
		out[i] = h.Name
	}
	return out
}

// ParseRecord decodes and checks a recovery record (not its MAC: see [Record.CheckMAC]).
func ParseRecord(b []byte) (*Record, error) {
	var r Record
	if err := decodeStrict(b, &r, "recovery record"); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Record) check() error {
	const what = "recovery record"
	switch {
	case r.Version != RecordVersion:
		return malformed(what, "version %d, expected %d", r.Version, RecordVersion)
	case !hex64.MatchString(r.Deployment):
		return malformed(what, "deployment: expected 64 lower-case hex digits")
	case !hex32.MatchString(r.Generation):
		return malformed(what, "generation: expected 32 lower-case hex digits")
	case len(r.Holders) < 1 || len(r.Holders) > MaxHolders:
		return malformed(what, "expected 1 to %d holders, found %d", MaxHolders, len(r.Holders))
	case r.Threshold < 1 || r.Threshold > len(r.Holders):
		return malformed(what, "threshold %d: expected 1 to the number of holders (%d)", r.Threshold, len(r.Holders))
	case len(r.MAC) != sha256.Size:
		return malformed(what, "mac: expected %d bytes, found %d", sha256.Size, len(r.MAC))
	}
	names := map[string]bool{}
	for i, h := range r.Holders {
		switch {
		case h.Index != i+1:
			return malformed(what, "holder %d has index %d, expected %d", i, h.Index, i+1)
		case !nameRE.MatchString(h.Name):
			return malformed(what, "holder %d: expected a name of 1-64 letters, digits, '.', '_' or '-', found %q", i+1, bound(h.Name))
		case names[h.Name]:
			return malformed(what, "holder %q appears twice", h.Name)
		case len(h.Commitment) != sha256.Size:
			return malformed(what, "holder %q: commitment: expected %d bytes", h.Name, sha256.Size)
		}
		if _, err := ParsePublicKey(h.PublicKey); err != nil {
			return malformed(what, "holder %q: %v", h.Name, err)
		}
		names[h.Name] = true
	}
	return nil
}

// macKey derives the record's MAC key from the data key.
func macKey(dataKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, nil, "cloister-recovery-record-mac-v1", sha256.Size)
}

func (r *Record) macInput() ([]byte, error) {
	c := *r
	c.MAC = nil
	return json.Marshal(&c)
}

func (r *Record) seal(dataKey []byte) error {
	k, err := macKey(dataKey)
	if err != nil {
		return err
	}
	in, err := r.macInput()
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, k)
	m.Write(in)
	r.MAC = m.Sum(nil)
	return nil
}

// CheckMAC reports whether the record was written by the holder of dataKey: a host that
// changed the record (its holders, keys or commitments) is caught once the key is back.
func (r *Record) CheckMAC(dataKey []byte) error {
	k, err := macKey(dataKey)
	if err != nil {
		return err
	}
	in, err := r.macInput()
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, k)
	m.Write(in)
	if !hmac.Equal(m.Sum(nil), r.MAC) {
		return errors.New("recovery: the recovery record's MAC does not verify under the recovered key: the record beside the sealed key was changed")
	}
	return nil
}

// commit returns the commitment to share y of holder index in generation gen.
func commit(gen string, index int, y []byte) []byte {
	h := sha256.New()
	io.WriteString(h, "cloister-recovery-commitment-v1\x00")
	io.WriteString(h, gen)
	h.Write([]byte{byte(index)})
	h.Write(y)
	return h.Sum(nil)
}

// CheckShare reports whether y is the share the record committed to for holder h.
func (r *Record) CheckShare(h *Holder, y []byte) bool {
	return hmac.Equal(commit(r.Generation, h.Index, y), h.Commitment)
}

func newGeneration() string {
	var g [16]byte
	rand.Read(g[:])
	return hex.EncodeToString(g[:])
}

// decodeStrict decodes one JSON object of at most MaxFileSize bytes with known fields only.
func decodeStrict(b []byte, v any, what string) error {
	if len(b) > MaxFileSize {
		return malformed(what, "%d bytes, expected at most %d", len(b), MaxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed(what, "%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed(what, "data after the JSON object")
	}
	return nil
}

// short is the first 16 characters of a hex digest, for messages.
func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// bound cuts s to 64 bytes for messages.
func bound(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
