package attested

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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
	if err := e.Check(res, rd[:]); err != nil {
		return nil, fmt.Errorf("coordinator recovery quote: %w", err)
	}
	return res, nil
}
