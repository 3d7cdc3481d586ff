package coordinator_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/coordinator"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/sgx/sim"
)

func TestConfigValidation(t *testing.T) {
	_, err := coordinator.New(t.Context(), coordinator.Config{})
	for _, want := range []string{"data directory: required", "client API address: required", "workload API address: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(empty Config) = %v; want it to say %q", err, want)
		}
	}
	_, err = coordinator.New(t.Context(), coordinator.Config{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "no SGX") || !strings.Contains(err.Error(), "--simulation") {
		t.Errorf("New without SGX and without simulation = %v; want a clear no-SGX error", err)
	}
	_, err = coordinator.New(t.Context(), coordinator.Config{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0", Simulation: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "simulated platform") {
		t.Errorf("New on an empty simulation directory = %v; want a simulated platform error", err)
	}
}

// run starts the assembly on dir and returns it with a stop function that requires a clean stop.
func run(t *testing.T, cfg coordinator.Config) (*coordinator.Coordinator, func()) {
	t.Helper()
	c, err := coordinator.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// The assembly serves both APIs and metrics, runs the core's background work (activation counts
// of unlimited workloads reach the store at the latest when it stops), and a restart on the same
// data directory finds the state.
func TestRunStopRestart(t *testing.T) {
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{DataDir: filepath.Join(dir, "state"), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0", Simulation: p.Dir()}
	c, stop := run(t, cfg)
	a := c.Addrs()
	if a.Client == "" || a.Mesh == "" || a.Metrics == "" || a.Pprof != "" {
		t.Fatalf("Addrs() = %+v", a)
	}
	expect := client.ExpectSimulated(p.Root())
	v, err := client.Verify(t.Context(), a.Client, expect)
	if err != nil {
		t.Fatalf("verify the Coordinator: %v", err)
	}
	cl := client.New(a.Client, v.Root)
	if _, err := cl.SetManifest(t.Context(), loadgen.Manifest("bench")); err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(t.Context(), loadgen.Config{Mesh: a.Mesh, Platform: p, Expect: expect, Workload: "bench", N: 12, Concurrency: 3})
	if err != nil || len(res.Latencies) != 12 {
		t.Fatalf("activations: %v (%d ok)", err, len(res.Latencies))
	}
	resp, err := http.Get("http://" + a.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cloister_activations_total{result="ok",workload="bench"} 12`, "cloister_api_requests_total", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics do not contain %q", want)
		}
	}
	stop()

	c2, _ := run(t, cfg)
	if st := c2.Core().Status(); st.State != api.StateRunning || st.ManifestVersion != 1 || !st.Simulation {
		t.Errorf("status after restart: %+v", st)
	}
	if n := c2.Core().ActivationCounts()["bench"]; n != 12 {
		t.Errorf("activation count after restart = %d, want 12 (flushed when the first run stopped)", n)
	}
	if c2.Core().Root().Equal(v.Root) == false {
		t.Errorf("the deployment root changed across a restart")
	}
}

// New releases what it acquired when it fails, and Close releases an assembly that never ran:
// the data directory can be opened again at once.
func TestCloseWithoutRun(t *testing.T) {
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{DataDir: filepath.Join(dir, "state"), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0", Simulation: p.Dir()}
	c, err := coordinator.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	busy := cfg
	busy.DataDir = filepath.Join(dir, "other") // the first holds the state's lock
	busy.MeshAddr = c.Addrs().Mesh             // taken
	if _, err := coordinator.New(t.Context(), busy); err == nil || !strings.Contains(err.Error(), "workload API address") {
		t.Errorf("New with a busy address = %v; want an address error", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = coordinator.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	c.Close()
}
