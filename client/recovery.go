package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// RecoveryURI marks the self-signed TLS certificate of a Coordinator in recovery mode.
const RecoveryURI = "urn:cloister:coordinator-recovery"

// RecoverySession is a verified connection to a Coordinator in recovery mode: its challenge
// passed [VerifyRecoveryChallenge] on this very connection, so a share submitted on it goes to
// the enclave whose quote was checked.
type RecoverySession struct {
	conn *oneConn
	// Challenge is the verified answer; Result its verified quote.
	Challenge *api.RecoveryChallenge
	Result    *verify.Result
	Nonce     [32]byte
}

// DialRecovery connects to the Coordinator at addr, fetches its recovery challenge over a fresh
// nonce and verifies it against e (see VerifyRecoveryChallenge).
func DialRecovery(ctx context.Context, addr string, e Expect) (*RecoverySession, error) {
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	conn, err := dialUnverified(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	var ch api.RecoveryChallenge
	if err := conn.do(ctx, "GET", api.PathRecovery+"?nonce="+hex.EncodeToString(nonce[:]), nil, &ch); err != nil {
		conn.Close()
		return nil, fmt.Errorf("get the recovery challenge: %w", err)
	}
	res, err := VerifyRecoveryChallenge(&ch, conn.peer(), nonce, e)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &RecoverySession{conn: conn, Challenge: &ch, Result: res, Nonce: nonce}, nil
}

// Submit hands a holder's submission to the Coordinator on the verified connection. The
// submission must be for this session.
func (s *RecoverySession) Submit(ctx context.Context, sub *recovery.Submission) (*api.RecoveryResponse, error) {
	if sub.Session != s.Challenge.Challenge.Session {
		return nil, fmt.Errorf("%w: the submission was signed for recovery session %s, and the Coordinator's session is %s (it restarted since the challenge was exported): sign it again against a new challenge",
			recovery.ErrWrongSession, sub.Session, s.Challenge.Challenge.Session)
	}
	var resp api.RecoveryResponse
	if err := s.conn.do(ctx, "POST", api.PathRecovery, sub, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Close closes the connection.
func (s *RecoverySession) Close() error { return s.conn.Close() }

// VerifyRecoveryChallenge verifies a recovery challenge fetched with nonce over a connection
// whose server presented peer (nil to check a stored challenge offline): the challenge's form,
// the certificate (self-signed, marked RecoveryURI, the one the connection presented), the
// quote and its collateral against e, and the report data that binds the certificate's key,
// the challenge (session key, deployment, split) and the nonce.
func VerifyRecoveryChallenge(ch *api.RecoveryChallenge, peer *x509.Certificate, nonce [32]byte, e Expect) (*verify.Result, error) {
	if err := ch.Challenge.Check(); err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertsPEM([]byte(ch.Certificate))
	if err != nil || len(certs) != 1 {
		return nil, fmt.Errorf("recovery certificate: expected one PEM certificate (%v)", err)
	}
	cert := certs[0]
	if peer != nil && !cert.Equal(peer) {
		return nil, errors.New("the recovery quote is about another certificate than the one this connection presented (a relayed quote?)")
	}
	if !slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.String() == RecoveryURI }) {
		return nil, fmt.Errorf("server certificate %q is not marked %s; expected a Coordinator in recovery mode", cert.Subject.CommonName, RecoveryURI)
	}
	if now := e.now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("recovery certificate is valid %s to %s, not at %s", cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	col, err := attest.DecodeCollateral(&ch.Collateral)
	if err != nil {
		return nil, fmt.Errorf("coordinator collateral: %w", err)
	}
	sgxRoot := e.SGXRoot
	if sgxRoot == nil {
		sgxRoot = verify.IntelRoot()
	}
	res, err := verify.New(sgxRoot).Verify(ch.Quote, col, e.now())
	if err != nil {
		return nil, fmt.Errorf("coordinator recovery quote: %w", err)
	}
	rd := recovery.ReportData(cert.RawSubjectPublicKeyInfo, ch.Challenge.Binding(), nonce)
	if err := e.check(res, rd[:]); err != nil {
		return nil, fmt.Errorf("coordinator recovery quote: %w", err)
	}
	return res, nil
}

// ChallengeFileFormat names a challenge file.
const ChallengeFileFormat = recovery.ChallengeFormat + "-file"

// ChallengeFile is a recovery challenge exported for a holder who signs offline: the
// Coordinator's answer and the nonce it was fetched with, so that the offline machine verifies
// the quote again before it decrypts anything.
type ChallengeFile struct {
	Format      string                `json:"format"`
	Coordinator string                `json:"coordinator"`
	Nonce       string                `json:"nonce"`
	FetchedAt   time.Time             `json:"fetched_at"`
	Response    api.RecoveryChallenge `json:"response"`
}

// ParseChallengeFile decodes a challenge file strictly (at most recovery.MaxFileSize bytes).
func ParseChallengeFile(b []byte) (*ChallengeFile, [32]byte, error) {
	var f ChallengeFile
	var nonce [32]byte
	if len(b) > recovery.MaxFileSize {
		return nil, nonce, fmt.Errorf("%w: challenge file: %d bytes, expected at most %d", recovery.ErrMalformed, len(b), recovery.MaxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, nonce, fmt.Errorf("%w: challenge file: %v", recovery.ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nonce, fmt.Errorf("%w: challenge file: data after the JSON object", recovery.ErrMalformed)
	}
	if f.Format != ChallengeFileFormat {
		return nil, nonce, fmt.Errorf("%w: challenge file: format %q, expected %q", recovery.ErrMalformed, truncate(f.Format), ChallengeFileFormat)
	}
	nonce, err := recovery.DecodeHex32(f.Nonce)
	if err != nil {
		return nil, nonce, fmt.Errorf("%w: challenge file: nonce: %v", recovery.ErrMalformed, err)
	}
	if err := f.Response.Challenge.Check(); err != nil {
		return nil, nonce, err
	}
	return &f, nonce, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
