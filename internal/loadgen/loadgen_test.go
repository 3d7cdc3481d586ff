package loadgen_test

import (
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

func TestRun(t *testing.T) {
	c := coordtest.Start(t)
	if _, err := c.Core.SetManifest(t.Context(), nil, loadgen.Manifest("bench")); err != nil {
		t.Fatal(err)
	}
	expect := client.ExpectSimulated(c.Platform.Root())
	res, err := loadgen.Run(t.Context(), loadgen.Config{Mesh: c.MeshAddr, Platform: c.Platform, Expect: expect, Workload: "bench", N: 40, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Latencies) != 40 || res.Errors != 0 || res.Throughput() <= 0 || res.Percentile(50) > res.Percentile(100) {
		t.Fatalf("result: %d ok, %d errors, %v/s", len(res.Latencies), res.Errors, res.Throughput())
	}
	if got := c.Core.ActivationCounts()["bench"]; got != 40 {
		t.Fatalf("the Coordinator counted %d activations, want 40", got)
	}
	// A workload the manifest does not know: every activation refused, reported, not hidden.
	res, err = loadgen.Run(t.Context(), loadgen.Config{Mesh: c.MeshAddr, Platform: c.Platform, Expect: expect, Workload: "nobody", N: 3, Concurrency: 1})
	if err == nil || res.Errors != 3 {
		t.Fatalf("unknown workload: err %v, errors %d", err, res.Errors)
	}
}
