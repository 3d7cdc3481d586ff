// Package coordtest runs a Coordinator in process on a simulated SGX platform, for tests and
// benchmarks of what talks to it: the launcher, the SDK, the load tool. End-to-end tests that
// need the real binary start `cloister coordinator` instead.
package coordtest

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/coordinator/server"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
)

// Coordinator is a Coordinator core on a temporary store and a new simulated platform.
type Coordinator struct {
	Core     *core.Core
	Platform *sim.Platform
	// ClientAddr and MeshAddr are set by Serve.
	ClientAddr, MeshAddr string
}

// New makes a Coordinator core without network. It quotes as the simulated Coordinator
// (attest.SimCoordinatorSigner, attest.CoordinatorProdID), so launchers accept it. Everything
// is closed when tb ends.
func New(tb testing.TB) *Coordinator {
	tb.Helper()
	dir := tb.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		tb.Fatal(err)
	}
	sealer, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
	if err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "state"), sealer, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	c, err := core.New(tb.Context(), core.Config{
		Store:    db,
		Verifier: attest.NewVerifier(verify.New(p.Root()), attest.StaticCollateral{C: col}),
		Issuer: &attest.SimIssuer{Platform: p,
			Body: attest.SimEnclaveBody([32]byte{1}, attest.SimCoordinatorSigner, attest.CoordinatorProdID, attest.CoordinatorSVN)},
		Simulation: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &Coordinator{Core: c, Platform: p}
}

// Start is New, serving both APIs on loopback until tb ends.
func Start(tb testing.TB) *Coordinator {
	tb.Helper()
	c := New(tb)
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.New(c.Core).Serve(ctx, cl, ml, nil, nil) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	c.ClientAddr, c.MeshAddr = cl.Addr().String(), ml.Addr().String()
	return c
}
