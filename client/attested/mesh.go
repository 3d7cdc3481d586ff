package attested

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/pki"
)

// MeshSession is a verified connection to a Coordinator's workload API. Activations made on it
// are bound to it. It is not safe for concurrent use.
type MeshSession struct {
	conn     *oneConn
	Verified *Verified
}

// MeshOption configures [DialMesh].
type MeshOption func(*meshOptions)

type meshOptions struct {
	nonceQuote bool
}

// WithNonceQuote makes DialMesh verify the Coordinator with a quote over a fresh nonce of its
// own, as [Verify] does, instead of the Coordinator's shared quote of the current epoch. It
// costs the Coordinator a quote per connection (milliseconds of its Quoting Enclave on SGX).
func WithNonceQuote() MeshOption { return func(o *meshOptions) { o.nonceQuote = true } }

// DialMesh connects to the workload API at addr and verifies the Coordinator against e before
// anything else is sent: a workload never takes its configuration from an impostor.
//
// By default it verifies the Coordinator's shared quote of the current epoch
// ([VerifyEpochQuoteResponse]: bound to the key this connection's server proved in the TLS
// handshake, no older than e.MaxQuoteAge), which the Coordinator makes once a minute for every
// launcher, or a quote over a fresh nonce if the Coordinator has no shared quote (an older
// one) or [WithNonceQuote] is given.
func DialMesh(ctx context.Context, addr string, e Expect, opts ...MeshOption) (*MeshSession, error) {
	p, err := DialMeshPending(ctx, addr, opts...)
	if err != nil {
		return nil, err
	}
	return p.Verify(e)
}

// PendingMesh is a connection to a Coordinator's workload API with the Coordinator's quote
// fetched but not verified: nothing can be sent on it before [PendingMesh.Verify] succeeds. It
// lets a launcher fetch the quote while it does its own checks, and verify it once it knows
// whom to expect.
type PendingMesh struct {
	addr string
	f    *fetched
}

// DialMeshPending connects to the workload API at addr and fetches the Coordinator's quote as
// [DialMesh] does, without verifying it. The caller must call Verify or Close.
func DialMeshPending(ctx context.Context, addr string, opts ...MeshOption) (*PendingMesh, error) {
	var o meshOptions
	for _, f := range opts {
		f(&o)
	}
	f, err := fetchQuote(ctx, addr, !o.nonceQuote)
	if err != nil {
		return nil, meshError(ctx, addr, err)
	}
	return &PendingMesh{addr: addr, f: f}, nil
}

// Verify verifies the fetched quote against e as [DialMesh] does and returns the session; on
// failure the connection is closed. Call it once.
func (p *PendingMesh) Verify(e Expect) (*MeshSession, error) {
	v, err := p.f.verify(e)
	if err != nil {
		return nil, fmt.Errorf("coordinator at %s failed verification: %w", p.addr, err)
	}
	return &MeshSession{conn: p.f.conn, Verified: v}, nil
}

// Close closes the connection without verifying.
func (p *PendingMesh) Close() error { return p.f.conn.Close() }

// meshError words an error of connecting to addr and fetching the quote.
func meshError(ctx context.Context, addr string, err error) error {
	switch _, dial := errors.AsType[*DialError](err); {
	case dial:
		return err
	case errors.Is(err, ErrConnClosed) || ctx.Err() != nil:
		return fmt.Errorf("verify coordinator at %s: %w", addr, err)
	default:
		return fmt.Errorf("coordinator at %s failed verification: %w", addr, err)
	}
}

// Activate activates a workload instance: issuer quotes over SHA-256 of the public key of csrDER
// (a DER certificate signing request, such as [WorkloadKey.CSR]) and this connection's
// exporter, and the Coordinator answers with the instance's certificate and configuration.
//
// An error wrapping [ErrConnClosed] means the connection closed or broke; the session is then
// unusable. Dial and verify again, and activate again on the new session (a new quote, bound to
// the new connection). The Coordinator may have counted the lost activation.
func (s *MeshSession) Activate(ctx context.Context, workload, instance string, csrDER []byte, issuer attest.Issuer) (*api.ActivationResponse, error) {
	_, spki, err := pki.CSRKey(csrDER)
	if err != nil {
		return nil, fmt.Errorf("activate %s: %w", workload, err)
	}
	exp, err := s.conn.exporter()
	if err != nil {
		return nil, err
	}
	quote, err := issuer.Quote(ctx, attest.ActivationReportData(spki, exp))
	if err != nil {
		return nil, fmt.Errorf("get own quote: %w", err)
	}
	req := api.ActivationRequest{Workload: workload, Instance: instance, Quote: quote, CSR: csrDER}
	var resp api.ActivationResponse
	if err := s.conn.do(ctx, "POST", api.PathActivate, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Close closes the connection.
func (s *MeshSession) Close() error { return s.conn.Close() }
