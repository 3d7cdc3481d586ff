package core

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// quoteCache remembers the wire form of the collateral of the Coordinator's own quotes.
type quoteCache struct {
	mu  sync.Mutex // guards the fields below
	col *verify.Collateral
	enc api.Collateral
}

// Quote returns a fresh quote of the Coordinator that binds its TLS key, nonce and the audit
// log's signed head (returned with it), with the collateral that verifies it. The Coordinator verifies its own quote first, so it never hands
// out evidence that would not verify.
func (c *Core) Quote(ctx context.Context, nonce [32]byte) (*api.QuoteResponse, error) {
	q, col, head, err := c.selfQuote(ctx, "quote", func(h *audit.Head) [64]byte {
		return attest.CoordinatorReportData(c.spki, nonce, h.Seq, h.Hash)
	})
	if err != nil {
		return nil, err
	}
	c.quotes.mu.Lock()
	if c.quotes.col != col {
		c.quotes.col, c.quotes.enc = col, attest.EncodeCollateral(col)
	}
	enc := c.quotes.enc
	c.quotes.mu.Unlock()
	return &api.QuoteResponse{
		Quote:            q,
		Collateral:       enc,
		CertificateChain: string(pki.EncodeCertPEM(c.tlsCert.Leaf, c.root.Cert)),
		Simulation:       c.cfg.Simulation,
		AuditHead:        head,
	}, nil
}

// selfQuote gets a quote of the Coordinator over the report data rd makes from the audit
// log's current head, and verifies it as any client would, so the Coordinator never hands out
// evidence that would not verify. Anyone may ask for a quote, and inside an enclave each one
// costs milliseconds: a few at a time (quoteSlots), so that a flood of requests cannot hold up
// launchers and auditors for long. what names the quote in errors.
func (c *Core) selfQuote(ctx context.Context, what string, rd func(*audit.Head) [64]byte) ([]byte, *verify.Collateral, *audit.Head, error) {
	select {
	case c.quoteSlots <- struct{}{}:
		defer func() { <-c.quoteSlots }()
	case <-ctx.Done():
		return nil, nil, nil, &Error{Code: api.CodeNotReady, Message: "too many quote requests at once; try again", Err: ctx.Err()}
	}
	head, err := c.AuditHead(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	q, err := c.cfg.Issuer.Quote(ctx, rd(head))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get the Coordinator's %s: %w", what, err)
	}
	_, col, err := c.cfg.Verifier.Verify(ctx, q, c.now())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the Coordinator's own %s does not verify: %w", what, err)
	}
	return q, col, head, nil
}

func (c *Core) rootPEM() []byte { return pki.EncodeCertPEM(c.root.Cert) }
