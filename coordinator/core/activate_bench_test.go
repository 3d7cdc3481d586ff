package core_test

import (
	"crypto/rand"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// BenchmarkActivate measures one activation inside the Coordinator: full verification of a
// simulated quote, the policy check, the durable activation count, the workload certificate and
// the rendering of a realistic workload's templates. Requests are made beforehand, so the
// launcher's work (key, CSR, quote) is not counted.
func BenchmarkActivate(b *testing.B) {
	tc := coordtest.Start(b)
	c, p, ctx := tc.Core, tc.Platform, b.Context()
	if _, err := c.SetManifest(ctx, nil, loadgen.Manifest("bench")); err != nil {
		b.Fatal(err)
	}
	issuer := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	type request struct {
		req api.ActivationRequest
		exp [32]byte
	}
	reqs := make([]request, 64)
	for i := range reqs {
		k, err := client.NewWorkloadKey("bench")
		if err != nil {
			b.Fatal(err)
		}
		var exp [32]byte
		rand.Read(exp[:])
		q, err := issuer.Quote(ctx, attest.ActivationReportData(k.SPKI, exp))
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = request{api.ActivationRequest{Workload: "bench", Instance: "bench-1", Quote: q, CSR: k.CSR}, exp}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &reqs[i%len(reqs)]
		if _, err := c.Activate(ctx, &r.req, r.exp); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
