package core_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// fleetManifest is loadgen's benchmark workload with three per-instance secrets and the
// given max_activations.
func fleetManifest(limit int) []byte {
	return fmt.Appendf(nil, `{
  "packages": {"bench": {"mrenclave": %q}},
  "workloads": {"fleet": {"package": "bench", "max_activations": %d,
    "files": {"/run/bench/cert.pem": "{{.Workload.Chain}}", "/run/bench/key.pem": "{{.Workload.Key}}"},
    "env": {"A": "{{.Secrets.a.Hex}}", "B": "{{.Secrets.b.Hex}}", "C": "{{.Secrets.c.Hex}}"}}},
  "secrets": {
    "a": {"type": "symmetric-key", "size": 256, "per_instance": true},
    "b": {"type": "symmetric-key", "size": 256, "per_instance": true},
    "c": {"type": "symmetric-key", "size": 256, "per_instance": true}
  }
}`, hex.EncodeToString(loadgen.BenchMREnclave[:]), limit)
}

// BenchmarkActivatePerInstance is BenchmarkActivate for a workload with three per-instance
// symmetric secrets: each activation is of a new instance (its first start) or of one of 64
// instances again (a restart or renewal), unlimited or limited (a durable count).
func BenchmarkActivatePerInstance(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit int
		fresh bool
	}{
		{"new-instance/unlimited", 0, true},
		{"same-instance/unlimited", 0, false},
		{"new-instance/limited", 1 << 30, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tc := coordtest.Start(b)
			c, p, ctx := tc.Core, tc.Platform, b.Context()
			if _, err := c.SetManifest(ctx, nil, fleetManifest(bc.limit)); err != nil {
				b.Fatal(err)
			}
			issuer := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
			type request struct {
				req api.ActivationRequest
				exp [32]byte
			}
			reqs := make([]request, 64)
			for i := range reqs {
				k, err := client.NewWorkloadKey("fleet")
				if err != nil {
					b.Fatal(err)
				}
				var exp [32]byte
				rand.Read(exp[:])
				q, err := issuer.Quote(ctx, attest.ActivationReportData(k.SPKI, exp))
				if err != nil {
					b.Fatal(err)
				}
				reqs[i] = request{api.ActivationRequest{Workload: "fleet", Instance: fmt.Sprintf("instance-%d", i), Quote: q, CSR: k.CSR}, exp}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := &reqs[i%len(reqs)]
				if bc.fresh { // the quote does not bind the instance ID
					r.req.Instance = fmt.Sprintf("instance-%d", i)
				}
				if _, err := c.Activate(ctx, &r.req, r.exp); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
