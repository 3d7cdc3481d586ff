package client_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// benchConcurrency is the number of launchers activating at once.
const benchConcurrency = 16

// BenchmarkActivateNewConnection measures activations as launchers make them, each on a new
// connection on which it first verifies the Coordinator, 16 at a time, against a Coordinator
// in this process (so on a small machine the two compete, as launchers and a Coordinator on one
// node do): "nonce", each connection verified with a quote the Coordinator makes over the
// launcher's nonce (WithNonceQuote, the old path), and "epoch", with the Coordinator's shared
// quote of the current epoch (the default). activations/s is the throughput; ns/op and the
// allocations are per activation, both sides together.
func BenchmarkActivateNewConnection(b *testing.B) {
	c := coordtest.Start(b)
	if _, err := c.Core.SetManifest(b.Context(), nil, loadgen.Manifest("bench")); err != nil {
		b.Fatal(err)
	}
	expect := client.ExpectSimulated(c.Platform.Root())
	issuer := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	csrs := make([][]byte, 64) // keys are the launcher's own work, made once here
	for i := range csrs {
		k, err := client.NewWorkloadKey("bench")
		if err != nil {
			b.Fatal(err)
		}
		csrs[i] = k.CSR
	}
	for _, bc := range []struct {
		name string
		opts []client.MeshOption
	}{{"nonce", []client.MeshOption{client.WithNonceQuote()}}, {"epoch", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(max(1, benchConcurrency/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					s, err := client.DialMesh(b.Context(), c.MeshAddr, expect, bc.opts...)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = s.Activate(b.Context(), "bench", fmt.Sprintf("b-%d", i), csrs[i%int64(len(csrs))], issuer)
					s.Close()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "activations/s")
		})
	}
}
