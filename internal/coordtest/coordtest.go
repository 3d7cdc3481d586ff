// Package coordtest runs a Coordinator in process on a simulated SGX platform, for tests and
// benchmarks of what talks to it: the launcher, the SDK, the load tool. It is the production
// assembly ([coordinator.New] and [coordinator.Coordinator.Run]) on loopback listeners and a
// temporary data directory, so what the tests exercise is what `cloister coordinator` runs.
// End-to-end tests that need the real binary start `cloister coordinator` instead (package
// e2etest).
package coordtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cloister-dev/cloister/coordinator"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// Coordinator is a running Coordinator on a new simulated platform.
type Coordinator struct {
	Core     *core.Core
	Platform *sim.Platform
	// ClientAddr and MeshAddr are the loopback addresses of the two APIs.
	ClientAddr, MeshAddr string
}

// Start runs a Coordinator on a new simulated platform, serving both APIs on loopback until tb
// ends; then it stops it and fails tb if the stop was not clean. It quotes as the simulated
// Coordinator (attest.SimCoordinatorSigner, attest.CoordinatorProdID), so launchers accept it.
func Start(tb testing.TB, opts ...coordinator.Option) *Coordinator {
	tb.Helper()
	dir := tb.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := coordinator.New(tb.Context(), coordinator.Config{
		DataDir:    filepath.Join(dir, "state"),
		ClientAddr: "127.0.0.1:0",
		MeshAddr:   "127.0.0.1:0",
		Simulation: p.Dir(),
	}, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("coordinator Run: %v", err)
		}
	})
	a := c.Addrs()
	return &Coordinator{Core: c.Core(), Platform: p, ClientAddr: a.Client, MeshAddr: a.Mesh}
}
