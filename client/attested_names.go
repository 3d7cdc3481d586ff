package client

import (
	"context"
	"crypto/x509"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
)

// The verification of a Coordinator and its workload API are in package attested, which the
// launcher links without net/http; the names below keep them where SDK users find them.

// CoordinatorURI marks the Coordinator's TLS certificate (see package coordinator/core).
const CoordinatorURI = attested.CoordinatorURI

// DefaultMaxQuoteAge is the default of Expect.MaxQuoteAge.
const DefaultMaxQuoteAge = attested.DefaultMaxQuoteAge

type (
	// Expect is what a Coordinator must prove about itself; see [attested.Expect].
	Expect = attested.Expect
	// Verified is a Coordinator that passed verification; see [attested.Verified].
	Verified = attested.Verified
	// MeshSession is a verified connection to a Coordinator's workload API; see
	// [attested.MeshSession].
	MeshSession = attested.MeshSession
	// MeshOption configures [DialMesh].
	MeshOption = attested.MeshOption
	// WorkloadKey is a workload instance's new key and CSR; see [attested.WorkloadKey].
	WorkloadKey = attested.WorkloadKey
	// APIError is an error answer of the Coordinator; see [attested.APIError].
	APIError = attested.APIError
	// DialError is a failure to reach the Coordinator; see [attested.DialError].
	DialError = attested.DialError
)

// ErrConnClosed is wrapped by the errors of requests on an attested connection that closed or
// broke under them; see [attested.ErrConnClosed].
var ErrConnClosed = attested.ErrConnClosed

// ExpectSimulated returns what a simulated (INSECURE) Coordinator proves; see
// [attested.ExpectSimulated].
func ExpectSimulated(sgxRoot *x509.Certificate) Expect { return attested.ExpectSimulated(sgxRoot) }

// NewNonce returns a random 32-byte nonce.
func NewNonce() ([32]byte, error) { return attested.NewNonce() }

// VerifyQuoteResponse verifies a Coordinator's answer to a quote request made with nonce; see
// [attested.VerifyQuoteResponse].
func VerifyQuoteResponse(resp *api.QuoteResponse, peer *x509.Certificate, nonce [32]byte, e Expect) (*Verified, error) {
	return attested.VerifyQuoteResponse(resp, peer, nonce, e)
}

// VerifyEpochQuoteResponse verifies the Coordinator's shared quote of an epoch; see
// [attested.VerifyEpochQuoteResponse].
func VerifyEpochQuoteResponse(resp *api.EpochQuoteResponse, peer *x509.Certificate, e Expect) (*Verified, error) {
	return attested.VerifyEpochQuoteResponse(resp, peer, e)
}

// Verify connects to the Coordinator at addr, fetches a quote for a fresh nonce on that
// connection and verifies it against e; see [attested.Verify].
func Verify(ctx context.Context, addr string, e Expect) (*Verified, error) {
	return attested.Verify(ctx, addr, e)
}

// DialMesh connects to the workload API at addr and verifies the Coordinator against e before
// anything else is sent; see [attested.DialMesh].
func DialMesh(ctx context.Context, addr string, e Expect, opts ...MeshOption) (*MeshSession, error) {
	return attested.DialMesh(ctx, addr, e, opts...)
}

// WithNonceQuote makes DialMesh verify the Coordinator with a quote over a fresh nonce; see
// [attested.WithNonceQuote].
func WithNonceQuote() MeshOption { return attested.WithNonceQuote() }

// NewWorkloadKey makes a new workload key and a CSR for it, naming workload; see
// [attested.NewWorkloadKey].
func NewWorkloadKey(workload string) (*WorkloadKey, error) { return attested.NewWorkloadKey(workload) }

// PendingMesh is a connection to the workload API with the Coordinator's quote fetched but not
// verified; see [attested.PendingMesh].
type PendingMesh = attested.PendingMesh

// DialMeshPending connects to the workload API and fetches the Coordinator's quote without
// verifying it; see [attested.DialMeshPending].
func DialMeshPending(ctx context.Context, addr string, opts ...MeshOption) (*PendingMesh, error) {
	return attested.DialMeshPending(ctx, addr, opts...)
}
