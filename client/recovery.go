package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// The recovery session lives in package attested, beside the other verified connections; the
// names below keep it where SDK users find it.

// RecoveryURI marks the self-signed TLS certificate of a Coordinator in recovery mode.
const RecoveryURI = attested.RecoveryURI

// RecoverySession is a verified connection to a Coordinator in recovery mode; see
// [attested.RecoverySession].
type RecoverySession = attested.RecoverySession

// DialRecovery connects to a Coordinator in recovery mode and verifies its challenge; see
// [attested.DialRecovery].
func DialRecovery(ctx context.Context, addr string, e Expect) (*RecoverySession, error) {
	return attested.DialRecovery(ctx, addr, e)
}

// VerifyRecoveryChallenge verifies a recovery challenge; see [attested.VerifyRecoveryChallenge].
func VerifyRecoveryChallenge(ch *api.RecoveryChallenge, peer *x509.Certificate, nonce [32]byte, e Expect) (*verify.Result, error) {
	return attested.VerifyRecoveryChallenge(ch, peer, nonce, e)
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
