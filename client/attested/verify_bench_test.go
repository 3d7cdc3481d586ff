package attested_test

import (
	"encoding/json"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// BenchmarkVerifyEpochQuoteResponse measures what a starting launcher spends verifying the
// Coordinator once its shared epoch quote arrived: "verify" is VerifyEpochQuoteResponse alone
// (the certificate chain, the collateral and the quote, the audit head, the report data);
// "decode+verify" adds decoding the answer's JSON, as the launcher receives it. A launcher does
// this once per process, so the first-use costs of a fresh process (reflection caches, heap
// growth) come on top; the answer's size is reported as answer-KB.
func BenchmarkVerifyEpochQuoteResponse(b *testing.B) {
	c := coordtest.Start(b)
	expect := attested.ExpectSimulated(c.Platform.Root())
	s, err := attested.DialMesh(b.Context(), c.MeshAddr, expect)
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	resp, peer := s.Verified.EpochResponse, s.Verified.Coordinator
	if resp == nil {
		b.Fatal("the Coordinator answered with no shared epoch quote")
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := attested.VerifyEpochQuoteResponse(resp, peer, expect); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+verify", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			var r api.EpochQuoteResponse
			if err := json.Unmarshal(raw, &r); err != nil {
				b.Fatal(err)
			}
			if _, err := attested.VerifyEpochQuoteResponse(&r, peer, expect); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(raw))/1000, "answer-KB")
	})
}
