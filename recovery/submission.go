package recovery

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Challenge is what a Coordinator in recovery mode offers holders: its recovery session (a
// fresh X25519 key made at start, never stored) and the split it needs shares of. Its quote
// binds [Challenge.Binding], so a holder who verified the quote knows the session key is the
// enclave's.
type Challenge struct {
	Format string `json:"format"`
	// Session names the recovery session: 32 hex digits, random at each start.
	Session string `json:"session"`
	// SessionKey is the session's X25519 public key (32 bytes).
	SessionKey []byte `json:"session_key"`
	Deployment string `json:"deployment"`
	Generation string `json:"generation"`
	Threshold  int    `json:"threshold"`
	// Holders names the holders of the split, by index.
	Holders []string `json:"holders"`
}

// Check checks the challenge's form.
func (c *Challenge) Check() error {
	const what = "recovery challenge"
	switch {
	case c.Format != ChallengeFormat:
		return malformed(what, "format %q, expected %q", bound(c.Format), ChallengeFormat)
	case !hex32.MatchString(c.Session):
		return malformed(what, "session: expected 32 lower-case hex digits")
	case len(c.SessionKey) != 32:
		return malformed(what, "session_key: expected 32 bytes (X25519), found %d", len(c.SessionKey))
	case !hex64.MatchString(c.Deployment):
		return malformed(what, "deployment: expected 64 lower-case hex digits")
	case !hex32.MatchString(c.Generation):
		return malformed(what, "generation: expected 32 lower-case hex digits")
	case len(c.Holders) < 1 || len(c.Holders) > MaxHolders:
		return malformed(what, "expected 1 to %d holders, found %d", MaxHolders, len(c.Holders))
	case c.Threshold < 1 || c.Threshold > len(c.Holders):
		return malformed(what, "threshold %d: expected 1 to %d", c.Threshold, len(c.Holders))
	}
	for _, h := range c.Holders {
		if !nameRE.MatchString(h) {
			return malformed(what, "holder %q: not a holder name", bound(h))
		}
	}
	return nil
}

// Binding is the SHA-256 of the challenge's lines: what the Coordinator's recovery quote binds.
func (c *Challenge) Binding() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsession %s\nsession-key %x\ndeployment %s\ngeneration %s\nthreshold %d\n", c.Format, c.Session, c.SessionKey, c.Deployment, c.Generation, c.Threshold)
	for _, name := range c.Holders {
		fmt.Fprintf(h, "holder %s\n", name)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ReportDataDomain starts the report data of a Coordinator's recovery quote.
const ReportDataDomain = "cloister-coordinator-recovery-v1\x00"

// ReportData is the report data of a recovery quote: SHA-256(ReportDataDomain ‖ SHA-256(DER
// SubjectPublicKeyInfo of the Coordinator's TLS key) ‖ challenge binding), then the caller's
// nonce.
func ReportData(spki []byte, binding [32]byte, nonce [32]byte) [64]byte {
	k := sha256.Sum256(spki)
	h := sha256.New()
	io.WriteString(h, ReportDataDomain)
	h.Write(k[:])
	h.Write(binding[:])
	var rd [64]byte
	h.Sum(rd[:0])
	copy(rd[32:], nonce[:])
	return rd
}

// Submission is a holder's share handed to one recovery session: the share re-encrypted to the
// session key and authenticated with the holder's key.
type Submission struct {
	Format     string `json:"format"`
	Session    string `json:"session"`
	Deployment string `json:"deployment"`
	Generation string `json:"generation"`
	Holder     string `json:"holder"`
	Index      int    `json:"index"`
	// Encrypted is the share's y-values, HPKE-sealed to the session key with info Context().
	Encrypted []byte `json:"encrypted"`
	// Auth names the authenticator: AuthRSAPSS or AuthX25519HMAC.
	Auth      string `json:"auth"`
	Signature []byte `json:"signature"`
}

// Context is what the encryption of the share to the session binds.
func (s *Submission) Context() []byte {
	return fmt.Appendf(nil, "%s\nsession %s\ndeployment %s\ngeneration %s\nholder %s\nindex %d\n",
		SubmissionFormat, s.Session, s.Deployment, s.Generation, s.Holder, s.Index)
}

// Message is what the holder signs: the context, the session key, and the SHA-256 of the
// encrypted share. It names one session of one Coordinator, so it cannot be replayed to
// another, nor to the same Coordinator after it restarted.
func (s *Submission) Message(sessionKey []byte) []byte {
	h := sha256.Sum256(s.Encrypted)
	return fmt.Appendf(s.Context(), "session-key %x\nencrypted-sha256 %x\n", sessionKey, h)
}

// NewSubmission makes holder's submission of share (decrypted: y) for the challenge ch.
func NewSubmission(share *Share, y []byte, priv PrivateKey, ch *Challenge) (*Submission, error) {
	if err := MatchChallenge(share, ch); err != nil {
		return nil, err
	}
	sk, err := ecdh.X25519().NewPublicKey(ch.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("session key: %v", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(sk)
	if err != nil {
		return nil, err
	}
	s := &Submission{Format: SubmissionFormat, Session: ch.Session, Deployment: share.Deployment, Generation: share.Generation,
		Holder: share.Holder, Index: share.Index}
	if s.Encrypted, err = hpke.Seal(pk, hpkeKDF, hpkeAEAD, s.Context(), y); err != nil {
		return nil, fmt.Errorf("encrypt the share to the session: %w", err)
	}
	if s.Auth, s.Signature, err = authenticate(priv, ch.SessionKey, s.Message(ch.SessionKey)); err != nil {
		return nil, fmt.Errorf("sign the submission: %w", err)
	}
	return s, nil
}

// MatchChallenge checks, before anything is sent, that share belongs to the deployment and
// split the challenging Coordinator recovers.
func MatchChallenge(share *Share, ch *Challenge) error {
	switch {
	case share.Deployment != ch.Deployment:
		return fmt.Errorf("%w: the share is for deployment %s, and this Coordinator recovers deployment %s", ErrWrongDeployment, short(share.Deployment), short(ch.Deployment))
	case share.Generation != ch.Generation:
		return fmt.Errorf("%w: the share is of split %s, and this Coordinator needs shares of split %s (a later manifest re-split the key and handed out new share files)", ErrStaleShare, share.Generation, ch.Generation)
	case share.Index < 1 || share.Index > len(ch.Holders) || ch.Holders[share.Index-1] != share.Holder:
		return fmt.Errorf("%w: the share names holder %q with index %d, which is not a holder of this split (%v)", ErrUnknownHolder, share.Holder, share.Index, ch.Holders)
	}
	return nil
}

// ParseSubmission decodes and checks a submission.
func ParseSubmission(b []byte) (*Submission, error) {
	var s Submission
	if err := decodeStrict(b, &s, "submission"); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Submission) check() error {
	const what = "submission"
	switch {
	case s.Format != SubmissionFormat:
		return malformed(what, "format %q, expected %q", bound(s.Format), SubmissionFormat)
	case !hex32.MatchString(s.Session):
		return malformed(what, "session: expected 32 lower-case hex digits")
	case !hex64.MatchString(s.Deployment):
		return malformed(what, "deployment: expected 64 lower-case hex digits")
	case !hex32.MatchString(s.Generation):
		return malformed(what, "generation: expected 32 lower-case hex digits")
	case !nameRE.MatchString(s.Holder):
		return malformed(what, "holder: expected a holder name, found %q", bound(s.Holder))
	case s.Index < 1 || s.Index > MaxHolders:
		return malformed(what, "index %d: expected 1 to %d", s.Index, MaxHolders)
	case len(s.Encrypted) == 0 || len(s.Encrypted) > 1024:
		return malformed(what, "encrypted: expected 1 to 1024 bytes, found %d", len(s.Encrypted))
	case s.Auth != AuthRSAPSS && s.Auth != AuthX25519HMAC:
		return malformed(what, "auth %q: expected %s or %s", bound(s.Auth), AuthRSAPSS, AuthX25519HMAC)
	case len(s.Signature) == 0 || len(s.Signature) > 1024:
		return malformed(what, "signature: expected 1 to 1024 bytes, found %d", len(s.Signature))
	}
	return nil
}

// Refusals of [Open] and [MatchChallenge], matched with errors.Is.
var (
	// ErrWrongDeployment: the share or submission is for another deployment.
	ErrWrongDeployment = errors.New("share of another deployment")
	// ErrStaleShare: the share is of another split (an earlier one) of this deployment.
	ErrStaleShare = errors.New("share of another split")
	// ErrWrongSession: the submission was made for another recovery session.
	ErrWrongSession = errors.New("submission for another recovery session")
	// ErrUnknownHolder: the holder or index is not one of the split.
	ErrUnknownHolder = errors.New("not a holder of this split")
	// ErrBadSignature: the holder's signature (or authenticator) does not verify.
	ErrBadSignature = errors.New("holder signature invalid")
	// ErrShareMismatch: the signed share is not the one the split gave the holder.
	ErrShareMismatch = errors.New("share does not match its commitment")
)

// Open checks submission s against the record in force and the session (its id and private
// key), verifies the holder's signature, decrypts the share and checks it against the holder's
// commitment. It returns the holder and the share's y-values.
func Open(s *Submission, rec *Record, session string, key *ecdh.PrivateKey) (*Holder, []byte, error) {
	switch {
	case s.Deployment != rec.Deployment:
		return nil, nil, fmt.Errorf("%w: the submission is for deployment %s, and this Coordinator recovers deployment %s", ErrWrongDeployment, short(s.Deployment), short(rec.Deployment))
	case s.Generation != rec.Generation:
		return nil, nil, fmt.Errorf("%w: the share is of split %s, and this Coordinator needs shares of split %s (a later manifest re-split the key and handed out new share files)", ErrStaleShare, s.Generation, rec.Generation)
	case s.Session != session:
		return nil, nil, fmt.Errorf("%w: the submission was signed for recovery session %s, and this Coordinator's session is %s (it restarted, or this is another Coordinator): sign it again against its current challenge", ErrWrongSession, s.Session, session)
	}
	h := rec.Holder(s.Holder)
	if h == nil || h.Index != s.Index {
		return nil, nil, fmt.Errorf("%w: holder %q with index %d is not a holder of split %s (holders: %v)", ErrUnknownHolder, s.Holder, s.Index, rec.Generation, rec.Names())
	}
	pub, err := ParsePublicKey(h.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuth(pub, key, s.Auth, s.Message(key.PublicKey().Bytes()), s.Signature); err != nil {
		return nil, nil, fmt.Errorf("%w: holder %q: %v; only the holder's own private key can submit its share", ErrBadSignature, s.Holder, err)
	}
	sk, err := hpke.NewDHKEMPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	y, err := hpke.Open(sk, hpkeKDF, hpkeAEAD, s.Context(), s.Encrypted)
	if err != nil || len(y) != KeySize {
		return nil, nil, fmt.Errorf("%w: holder %q: the share does not decrypt with this session's key to %d bytes", ErrShareMismatch, s.Holder, KeySize)
	}
	if !rec.CheckShare(h, y) {
		clear(y)
		return nil, nil, fmt.Errorf("%w: holder %q signed a share that is not the one split %s gave it", ErrShareMismatch, s.Holder, rec.Generation)
	}
	return h, y, nil
}

// NewSession makes a recovery session's id and key.
func NewSession() (string, *ecdh.PrivateKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	return newGeneration(), k, nil
}

// DecodeHex32 is a helper for callers that read a 32-byte hex value (a nonce).
func DecodeHex32(s string) ([32]byte, error) {
	var out [32]byte
	if len(s) != 64 {
		return out, fmt.Errorf("expected 64 hex digits, found %d characters", len(s))
	}
	_, err := hex.Decode(out[:], []byte(s))
	return out, err
}
