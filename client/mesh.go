package client

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

// DialMesh connects to the workload API at addr and verifies the Coordinator against e before
// anything else is sent: a workload never takes its configuration from an impostor.
func DialMesh(ctx context.Context, addr string, e Expect) (*MeshSession, error) {
	conn, v, err := dialVerified(ctx, addr, e)
	if err != nil {
		switch _, dial := errors.AsType[*DialError](err); {
		case dial:
		case errors.Is(err, ErrConnClosed) || ctx.Err() != nil:
			err = fmt.Errorf("verify coordinator at %s: %w", addr, err)
		default:
			err = fmt.Errorf("coordinator at %s failed verification: %w", addr, err)
		}
		return nil, err
	}
	return &MeshSession{conn: conn, Verified: v}, nil
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
