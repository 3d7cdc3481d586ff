package core

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
)

// TestEpochQuote: within an epoch everyone gets the same quote, made once, which verifies
// against the Coordinator's TLS certificate; the next epoch has a new one.
func TestEpochQuote(t *testing.T) {
	f := newFixture(t)
	expect := client.Expect{SGXRoot: platform.Root(), Now: func() time.Time { return f.now }}
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	for i := range bodies {
		wg.Go(func() {
			_, b, err := f.c.EpochQuote(t.Context())
			if err != nil {
				t.Error(err)
			}
			bodies[i] = b
		})
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		if !bytes.Equal(b, bodies[0]) {
			t.Fatal("two callers in one epoch got different answers")
		}
	}
	resp, _, err := f.c.EpochQuote(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Epoch != attest.EpochAt(f.now) || !resp.Simulation {
		t.Errorf("epoch %d, simulation %v; want %d, true", resp.Epoch, resp.Simulation, attest.EpochAt(f.now))
	}
	if _, err := client.VerifyEpochQuoteResponse(resp, f.c.TLSCertificate().Leaf, expect); err != nil {
		t.Fatalf("the Coordinator's epoch quote does not verify: %v", err)
	}

	f.now = f.now.Add(attest.EpochLength)
	next, _, err := f.c.EpochQuote(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch != resp.Epoch+1 || bytes.Equal(next.Quote, resp.Quote) {
		t.Errorf("next epoch: epoch %d (want %d), same quote %v", next.Epoch, resp.Epoch+1, bytes.Equal(next.Quote, resp.Quote))
	}
	if _, err := client.VerifyEpochQuoteResponse(next, f.c.TLSCertificate().Leaf, expect); err != nil {
		t.Fatalf("the next epoch's quote does not verify: %v", err)
	}
}

// TestRunRefreshesEpochQuote: Run makes the shared quote without being asked.
func TestRunRefreshesEpochQuote(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for f.c.epochs.cur.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if q := f.c.epochs.cur.Load(); q == nil || q.epoch != attest.EpochAt(f.now) {
		t.Fatalf("Run made no shared quote for the current epoch")
	}
}
