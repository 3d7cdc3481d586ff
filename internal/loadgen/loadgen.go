// Package loadgen drives activations against a Coordinator for `cloister bench activate`:
// concurrent workers, each on its own verified connection, each activation with its own key,
// CSR and simulated quote, as a launcher makes them.
//
// Keys and CSRs are made before the clock starts: they are the launcher's work, done once per
// container, and on a shared machine they would take CPU from the Coordinator being measured.
// Quotes are made during the run, because they bind the connection they travel on.
package loadgen

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/sgx/sim"
	"golang.org/x/sync/errgroup"
)

// BenchMREnclave is the simulated measurement of the benchmark's workload.
var BenchMREnclave = sha256.Sum256([]byte("cloister-bench-workload-v1"))

// Config is one load run.
type Config struct {
	Mesh        string        // host:port of the workload API
	Platform    *sim.Platform // makes the quotes
	Expect      client.Expect // what the Coordinator must prove
	Workload    string
	N           int // activations in all
	Concurrency int
	// Reconnect makes each activation dial and verify the Coordinator on a new connection, as a
	// starting launcher does; by default each worker verifies once and activates on its connection.
	Reconnect bool
	// NonceQuote verifies the Coordinator with a quote over a nonce per connection
	// (client.WithNonceQuote) instead of its shared epoch quote.
	NonceQuote bool
}

// Result is what a run measured.
type Result struct {
	Elapsed   time.Duration
	Latencies []time.Duration // of successful activations, sorted
	Errors    int
	FirstErr  error
}

// Throughput is successful activations per second.
func (r *Result) Throughput() float64 {
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0..100) of the latencies.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies)-1) * p / 100)
	return r.Latencies[i]
}

// Run performs cfg.N activations with cfg.Concurrency workers.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.N < 1 || cfg.Concurrency < 1 {
		return nil, fmt.Errorf("need n >= 1 and concurrency >= 1, found n=%d concurrency=%d", cfg.N, cfg.Concurrency)
	}
	issuer := &attest.SimIssuer{Platform: cfg.Platform, Body: attest.SimEnclaveBody(BenchMREnclave, BenchMREnclave, 1, 1)}
	csrs, err := makeCSRs(cfg.Workload, cfg.N)
	if err != nil {
		return nil, err
	}
	var opts []client.MeshOption
	if cfg.NonceQuote {
		opts = append(opts, client.WithNonceQuote())
	}
	sessions := make([]*client.MeshSession, cfg.Concurrency)
	for i := range sessions {
		if cfg.Reconnect {
			break
		}
		s, err := client.DialMesh(ctx, cfg.Mesh, cfg.Expect, opts...)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		sessions[i] = s
	}
	activate := func(w int, instance string, csr []byte) error {
		s := sessions[w]
		if s == nil {
			var err error
			if s, err = client.DialMesh(ctx, cfg.Mesh, cfg.Expect, opts...); err != nil {
				return err
			}
			defer s.Close()
		}
		_, err := s.Activate(ctx, cfg.Workload, instance, csr, issuer)
		return err
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		res      = &Result{}
		wg       sync.WaitGroup
		start    = time.Now()
		perWorkr = make([][]time.Duration, cfg.Concurrency)
	)
	for w := range cfg.Concurrency {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(cfg.N); n = next.Add(1) {
				t0 := time.Now()
				err := activate(w, fmt.Sprintf("bench-%d", n), csrs[n-1])
				if err != nil {
					mu.Lock()
					res.Errors++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
					mu.Unlock()
					if ctx.Err() != nil {
						return
					}
					continue
				}
				perWorkr[w] = append(perWorkr[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, l := range perWorkr {
		res.Latencies = append(res.Latencies, l...)
	}
	slices.Sort(res.Latencies)
	if len(res.Latencies) == 0 {
		return res, fmt.Errorf("no activation succeeded: %w", errors.Join(res.FirstErr))
	}
	return res, nil
}

// makeCSRs makes n keys and CSRs, on every core, and returns the CSRs.
func makeCSRs(workload string, n int) ([][]byte, error) {
	out := make([][]byte, n)
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range out {
		g.Go(func() error {
			k, err := client.NewWorkloadKey(workload)
			if err != nil {
				return err
			}
			out[i] = k.CSR
			return nil
		})
	}
	return out, g.Wait()
}
