package core

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
)

// epochQuote is the Coordinator's shared quote of one epoch, its answer encoded once.
type epochQuote struct {
	epoch uint64
	resp  *api.EpochQuoteResponse
	body  []byte // resp as JSON, with a final newline
}

// epochQuotes holds the shared quote of the current epoch.
type epochQuotes struct {
	making chan struct{}              // a token: held by whoever makes a quote, so one is made at a time
	cur    atomic.Pointer[epochQuote] // the newest quote; nil before the first
}

// epochRetry is how soon a failed refresh of the shared quote is tried again.
const epochRetry = 5 * time.Second

// EpochQuote returns the Coordinator's shared quote of the current epoch (attest.EpochAt of
// now) and its JSON encoding, the answer of GET api.PathQuoteEpoch. Everyone asking within an
// epoch gets the same answer: it binds the Coordinator's TLS key, the epoch and the audit head
// (attest.CoordinatorEpochReportData), no verifier's nonce. [Core.Run] makes it at the start of
// each epoch; a request that finds none for the current epoch makes it (one at a time). The
// Coordinator verifies its own quote first, as [Core.Quote] does.
func (c *Core) EpochQuote(ctx context.Context) (*api.EpochQuoteResponse, []byte, error) {
	epoch := attest.EpochAt(c.now())
	if q := c.epochs.cur.Load(); q != nil && q.epoch == epoch {
		return q.resp, q.body, nil
	}
	select {
	case c.epochs.making <- struct{}{}:
		defer func() { <-c.epochs.making }()
	case <-ctx.Done():
		return nil, nil, &Error{Code: api.CodeNotReady, Message: "the shared quote is being made; try again", Err: ctx.Err()}
	}
	epoch = attest.EpochAt(c.now())
	if q := c.epochs.cur.Load(); q != nil && q.epoch == epoch { // made while this waited
		return q.resp, q.body, nil
	}
	q, err := c.makeEpochQuote(ctx, epoch)
	if err != nil {
		return nil, nil, err
	}
	c.epochs.cur.Store(q)
	return q.resp, q.body, nil
}

func (c *Core) makeEpochQuote(ctx context.Context, epoch uint64) (*epochQuote, error) {
	q, col, head, err := c.selfQuote(ctx, "epoch quote", func(h *audit.Head) [64]byte {
		return attest.CoordinatorEpochReportData(c.spki, epoch, h.Seq, h.Hash)
	})
	if err != nil {
		return nil, err
	}
	resp := &api.EpochQuoteResponse{
		Quote:            q,
		Collateral:       attest.EncodeCollateral(col),
		CertificateChain: string(pki.EncodeCertPEM(c.tlsCert.Leaf, c.root.Cert)),
		Simulation:       c.cfg.Simulation,
		AuditHead:        head,
		Epoch:            epoch,
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	c.log.Debug("made the shared epoch quote", "epoch", epoch, "audit_seq", head.Seq)
	return &epochQuote{epoch: epoch, resp: resp, body: append(body, '\n')}, nil
}

// refreshEpochQuotes makes the shared quote at the start of every epoch, so that launchers never
// wait for one, until ctx ends.
func (c *Core) refreshEpochQuotes(ctx context.Context) {
	for {
		now := c.now()
		wait := time.Unix(int64(attest.EpochAt(now)+1)*int64(attest.EpochLength/time.Second), 0).Sub(now)
		if _, _, err := c.EpochQuote(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Error("make the shared epoch quote", "error", err.Error())
			wait = min(wait, epochRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0) + 10*time.Millisecond):
		}
	}
}
