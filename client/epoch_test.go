package client

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// epochResponse returns the shared quote of epoch for coord, as a Coordinator makes it, with
// the report data of quoted (an epoch, or a nonce quote's report data when nonce is set).
func (f *quoteFixture) epochResponse(t testing.TB, epoch, quoted uint64, nonce bool, h *audit.Head) *api.EpochQuoteResponse {
	t.Helper()
	rd := attest.CoordinatorEpochReportData(f.coord.RawSubjectPublicKeyInfo, quoted, h.Seq, h.Hash)
	if nonce {
		rd = attest.CoordinatorReportData(f.coord.RawSubjectPublicKeyInfo, [32]byte{}, h.Seq, h.Hash)
	}
	iss := &attest.SimIssuer{Platform: f.platform, Body: attest.SimEnclaveBody(f.mr, attest.SimCoordinatorSigner, attest.CoordinatorProdID, 1)}
	q, err := iss.Quote(t.Context(), rd)
	if err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(f.platform.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	return &api.EpochQuoteResponse{Quote: q, Collateral: attest.EncodeCollateral(col), CertificateChain: string(pki.EncodeCertPEM(f.coord, f.root.Cert)),
		Simulation: true, AuditHead: h, Epoch: epoch}
}

// TestVerifyEpochQuoteResponse: a shared quote verifies only for the connection's key, within
// the age bound, for the epoch it names, and never as (or from) a quote over a nonce.
func TestVerifyEpochQuoteResponse(t *testing.T) {
	f := newQuoteFixture(t)
	now := time.Now()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(d) } }
	expect := ExpectSimulated(f.platform.Root())
	expect.Now = at(0)
	cur := attest.EpochAt(now)
	h := head(t, 7, f.root.Key)
	good := f.epochResponse(t, cur, cur, false, h)

	v, err := VerifyEpochQuoteResponse(good, f.coord, expect)
	if err != nil {
		t.Fatalf("VerifyEpochQuoteResponse: %v", err)
	}
	if !v.Root.Equal(f.root.Cert) || !v.Coordinator.Equal(f.coord) || !v.IdentityChecked || v.EpochResponse != good || v.Response != nil || v.AuditHead != h {
		t.Errorf("Verified = %+v; want the root, the Coordinator, the identity checked and the epoch answer", v)
	}
	old := f.epochResponse(t, cur-4, cur-4, false, h) // started 4-5 minutes ago
	if _, err := VerifyEpochQuoteResponse(old, f.coord, expect); err != nil {
		t.Errorf("a quote of 4 epochs ago (within the default 5 minutes): %v", err)
	}
	withAge := expect
	withAge.MaxQuoteAge = 2 * time.Minute
	ahead := f.epochResponse(t, cur+1, cur+1, false, h) // the Coordinator's clock is ahead
	if _, err := VerifyEpochQuoteResponse(ahead, f.coord, expect); err != nil {
		t.Errorf("a quote of the next epoch (clock skew): %v", err)
	}
	for _, tc := range []struct {
		name   string
		resp   *api.EpochQuoteResponse
		peer   *x509.Certificate
		expect Expect
		want   string
	}{
		{"relayed: the connection presented another certificate", good, f.issue(t, f.root, true), expect,
			"the quote is about another certificate than the one this connection presented (a relayed quote?)"},
		{"too old", f.epochResponse(t, cur-6, cur-6, false, h), f.coord, expect, "which is not within 5m0s before"},
		{"older than MaxQuoteAge", old, f.coord, withAge, "which is not within 2m0s before"},
		{"from the future", f.epochResponse(t, cur+2, cur+2, false, h), f.coord, expect, "nor one epoch after it"},
		{"a far epoch", f.epochResponse(t, 1<<62, 1<<62, false, h), f.coord, expect, "is not a time"},
		{"the epoch named is not the one quoted", f.epochResponse(t, cur, cur-1, false, h), f.coord, expect, "report data"},
		{"a quote over a nonce", f.epochResponse(t, cur, cur, true, h), f.coord, expect, "report data"},
		{"another audit head", func() *api.EpochQuoteResponse { r := *good; r.AuditHead = head(t, 8, f.root.Key); return &r }(), f.coord, expect, "report data"},
		{"no audit head", func() *api.EpochQuoteResponse { r := *good; r.AuditHead = nil; return &r }(), f.coord, expect, "no audit log head"},
		{"certificate expired", good, f.coord, Expect{SGXRoot: f.platform.Root(), MaxQuoteAge: 3 * time.Hour, Now: at(2 * time.Hour)}, "coordinator certificate is valid "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyEpochQuoteResponse(tc.resp, tc.peer, tc.expect)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyEpochQuoteResponse = %v, %v; want an error with %q", v, err, tc.want)
			}
		})
	}
	// An epoch quote is not a nonce quote either.
	asNonce := &api.QuoteResponse{Quote: good.Quote, Collateral: good.Collateral, CertificateChain: good.CertificateChain, AuditHead: h}
	if _, err := VerifyQuoteResponse(asNonce, f.coord, [32]byte{}, expect); err == nil || !strings.Contains(err.Error(), "report data") {
		t.Errorf("an epoch quote passed as a quote over the zero nonce: %v", err)
	}
}
