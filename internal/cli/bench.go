package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/spf13/cobra"
)

func (a *app) newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load tools",
	}
	cmd.AddCommand(a.newBenchActivateCmd())
	return cmd
}

func (a *app) newBenchActivateCmd() *cobra.Command {
	var (
		out         outputFlag
		mesh        string
		clientAddr  string
		simDir      string
		n, conc     int
		workload    string
		setup       bool
		metricsAddr string
		cpuProfile  string
		reconnect   bool
		nonceQuote  bool
	)
	cmd := &cobra.Command{
		Use:   "activate --coordinator ADDR --simulation DIR",
		Short: "Measure activation throughput and latency of a simulated Coordinator",
		Long: `Run N activations against the Coordinator's workload API with C concurrent workers, each on
its own verified connection, each activation with a fresh key, CSR and simulated quote, as
launchers make them. Prints throughput and latency percentiles, and the Coordinator's resident
memory when --metrics is given.

The Coordinator's manifest must have a workload (--workload, default bench) whose package accepts
the benchmark's simulated measurement (examples/manifest.json in the source has one). A fresh
Coordinator has no manifest: add --setup --client-api ADDR to set such a manifest first. --setup
fails on a Coordinator that has one already.`,
		Example: `  cloister bench activate --coordinator 127.0.0.1:2001 --simulation sgx-sim \
      --setup --client-api 127.0.0.1:4433 --n 1000 --concurrency 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if simDir == "" {
				return errors.New("--simulation is required: the benchmark makes simulated quotes")
			}
			p, err := sim.Load(simDir)
			if err != nil {
				return err
			}
			expect := client.ExpectSimulated(p.Root())
			ctx := cmd.Context()
			if setup {
				if clientAddr == "" {
					return errors.New("--setup needs --client-api")
				}
				v, err := client.Verify(ctx, clientAddr, expect)
				if err != nil {
					return err
				}
				if _, err := client.New(clientAddr, v.Root).SetManifest(ctx, loadgen.Manifest(workload)); err != nil {
					return fmt.Errorf("set the benchmark manifest: %w", err)
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := loadgen.Run(ctx, loadgen.Config{Mesh: mesh, Platform: p, Expect: expect, Workload: workload, N: n, Concurrency: conc,
				Reconnect: reconnect, NonceQuote: nonceQuote})
			if err != nil {
				return err
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			o := jsonoutput.BenchActivate{
				Activations: len(res.Latencies), Errors: res.Errors, Concurrency: conc,
				Seconds: res.Elapsed.Seconds(), PerSecond: res.Throughput(),
				P50ms: ms(res.Percentile(50)), P90ms: ms(res.Percentile(90)), P99ms: ms(res.Percentile(99)), MaxMs: ms(res.Percentile(100)),
			}
			if res.FirstErr != nil {
				o.FirstError = res.FirstErr.Error()
			}
			if metricsAddr != "" {
				rss, err := scrapeRSS(cmd, metricsAddr)
				if err != nil {
					return err
				}
				o.CoordinatorMB = rss / (1 << 20)
			}
			return out.print(cmd.OutOrStdout(), o, func(w io.Writer) {
				fmt.Fprintf(w, "%d activations (%d errors) with concurrency %d in %.2fs: %.0f/s\n", o.Activations, o.Errors, conc, o.Seconds, o.PerSecond)
				fmt.Fprintf(w, "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", o.P50ms, o.P90ms, o.P99ms, o.MaxMs)
				if o.CoordinatorMB > 0 {
					fmt.Fprintf(w, "coordinator resident memory %.1f MiB\n", o.CoordinatorMB)
				}
				if o.FirstError != "" {
					fmt.Fprintf(w, "first error: %s\n", o.FirstError)
				}
			})
		},
	}
	out.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&mesh, "coordinator", "127.0.0.1:2001", "host:port of the Coordinator's workload API")
	fl.StringVar(&clientAddr, "client-api", "", "host:port of the Coordinator's client API (for --setup)")
	fl.StringVar(&simDir, "simulation", "", "the simulated SGX platform the Coordinator runs on")
	fl.IntVar(&n, "n", 1000, "number of activations")
	fl.IntVar(&conc, "concurrency", 16, "concurrent workers")
	fl.StringVar(&workload, "workload", "bench", "workload to activate")
	fl.BoolVar(&setup, "setup", false, "set the benchmark manifest first (on a Coordinator without one)")
	fl.StringVar(&metricsAddr, "metrics", "", "host:port of the Coordinator's metrics, to report its resident memory")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
	fl.BoolVar(&reconnect, "reconnect", false, "verify the Coordinator on a new connection for each activation, as starting launchers do")
	fl.BoolVar(&nonceQuote, "nonce-quote", false, "verify with a quote over a nonce per connection instead of the Coordinator's shared epoch quote")
	return cmd
}

// scrapeRSS reads process_resident_memory_bytes from a Prometheus endpoint.
func scrapeRSS(cmd *cobra.Command, addr string) (float64, error) {
	req, err := http.NewRequestWithContext(cmd.Context(), "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("--metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("--metrics %s: no process_resident_memory_bytes", addr)
}
