package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/coordinator/server"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

// coordinatorFlags are the flags of `cloister coordinator`.
type coordinatorFlags struct {
	dataDir     string
	clientAddr  string
	meshAddr    string
	metricsAddr string
	simulation  string
	dnsNames    []string
	ips         []net.IP
	logFormat   string
	logLevel    string
	addrFile    string
	pccsURL     string
	pcsAPIKey   string
	pprofAddr   string
}

func (a *app) newCoordinatorCmd() *cobra.Command {
	var f coordinatorFlags
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the Coordinator, the attested control plane of a deployment",
		Long: `Run the Coordinator: it holds the deployment manifest, verifies every workload's evidence,
runs the deployment's CA, generates and delivers secrets, and seals its state in --data-dir.

Inside an SGX enclave (Gramine) it quotes through /dev/attestation and seals with the enclave's
signer key. With --simulation DIR it runs on a simulated SGX platform instead: everything works
the same, and nothing is secure. It says so in every status answer, log line and certificate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runCoordinator(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/cloister", "directory of the sealed state")
	fl.StringVar(&f.clientAddr, "client-addr", ":4433", "address of the client API (operators, auditors, CLI)")
	fl.StringVar(&f.meshAddr, "mesh-addr", ":2001", "address of the workload API (launchers)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "address of the Prometheus metrics endpoint (plain HTTP); empty: off")
	fl.StringVar(&f.simulation, "simulation", "", "run on the simulated SGX platform in this directory (NOT secure)")
	fl.StringSliceVar(&f.dnsNames, "dns-name", nil, "extra DNS name for the Coordinator's TLS certificate (repeatable)")
	fl.IPSliceVar(&f.ips, "ip-address", nil, "extra IP address for the Coordinator's TLS certificate (repeatable)")
	fl.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.addrFile, "addr-file", "", "write the bound addresses as JSON to this file once listening (for scripts and tests)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's pprof profiles on this address (plain HTTP; for diagnosis only, never expose it)")
	fl.StringVar(&f.pccsURL, "pccs-url", pcs.IntelPCSURL, "Intel PCS or PCCS certification API for SGX collateral (not used in simulation)")
	fl.StringVar(&f.pcsAPIKey, "pcs-api-key", "", "Intel PCS subscription key, if the service needs one (default: env CLOISTER_PCS_API_KEY, which keeps it out of process listings)")
	return cmd
}

func (f *coordinatorFlags) logger(w *os.File) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: expected debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: expected json or text", f.logFormat)
}

// tee is what the Coordinator proves itself and seals with: SGX through Gramine, or a
// simulated platform.
type tee struct {
	issuer     attest.Issuer
	verifier   *attest.Verifier
	sealer     seal.Sealer
	simulation bool
}

// newTEE sets up the simulated platform (--simulation) or real SGX inside Gramine.
func (f *coordinatorFlags) newTEE(log *slog.Logger) (*tee, error) {
	if f.simulation == "" {
		g := &attest.GramineIssuer{}
		if !g.Available() {
			return nil, fmt.Errorf("no SGX: %s/quote does not exist, so this is not a Gramine SGX enclave; run the Coordinator inside Gramine, or pass --simulation DIR for a simulated platform", attest.DefaultGramineDir)
		}
		apiKey := f.pcsAPIKey
		if apiKey == "" {
			apiKey = os.Getenv("CLOISTER_PCS_API_KEY")
		}
		client, err := pcs.NewClient(pcs.ClientConfig{BaseURL: f.pccsURL, APIKey: apiKey})
		if err != nil {
			return nil, fmt.Errorf("--pccs-url: %w", err)
		}
		provider, err := pcs.NewProvider(pcs.ProviderConfig{Client: client, Dir: filepath.Join(f.dataDir, "collateral")}, pcs.WithLogger(log))
		if err != nil {
			return nil, err
		}
		sealer, err := seal.NewGramine("")
		if err != nil {
			return nil, err
		}
		return &tee{issuer: g, verifier: attest.NewVerifier(verify.New(verify.IntelRoot()), provider), sealer: sealer}, nil
	}
	log.Warn("SIMULATION MODE: this Coordinator is NOT protected by SGX; its evidence can be forged by anyone holding the simulated platform", "platform", f.simulation)
	platform, err := sim.Load(f.simulation)
	if err != nil {
		return nil, fmt.Errorf("--simulation: %w", err)
	}
	col, err := verify.LoadCollateral(platform.CollateralDir())
	if err != nil {
		return nil, fmt.Errorf("--simulation: %w", err)
	}
	exe, err := attest.ExecutableSHA256()
	if err != nil {
		return nil, err
	}
	sealer, err := seal.NewSimulated(filepath.Join(f.dataDir, "simulation-seal.key"))
	if err != nil {
		return nil, err
	}
	return &tee{
		issuer: &attest.SimIssuer{
			Platform: platform,
			Body: attest.SimEnclaveBody(enclave.SimMeasurement(enclave.SimCoordinatorTag, exe[:]),
				attest.SimCoordinatorSigner, attest.CoordinatorProdID, attest.CoordinatorSVN),
		},
		verifier:   attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
		sealer:     sealer,
		simulation: true,
	}, nil
}

// coordinatorGOGC is the Coordinator's GC target unless GOGC is set. Activations allocate
// briefly-lived buffers (quotes, JSON, certificates); at the default of 100 the collector and the
// scavenger returning memory cost ~15% of an activation's CPU. The heap stays small (tens of
// MiB), so trading some memory for CPU is right here.
const coordinatorGOGC = 400

func (a *app) runCoordinator(cmd *cobra.Command, f *coordinatorFlags) error {
	ctx := cmd.Context()
	if a.getenv("GOGC") == "" {
		debug.SetGCPercent(coordinatorGOGC)
	}
	log, err := f.logger(os.Stderr)
	if err != nil {
		return err
	}
	if f.simulation != "" {
		log = log.With("simulation", true)
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	t, err := f.newTEE(log)
	if err != nil {
		return err
	}
	db, err := store.Open(f.dataDir, t.sealer, store.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("open state in %s: %w", f.dataDir, err)
	}
	defer db.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := core.New(ctx, core.Config{
		Store: db, Verifier: t.verifier, Issuer: t.issuer, Simulation: t.simulation,
		DNSNames: f.dnsNames, IPAddresses: f.ips,
	}, core.WithLogger(log), core.WithRegisterer(reg))
	if err != nil {
		return err
	}
	srv := server.New(c, server.WithLogger(log), server.WithRegisterer(reg))
	clientLn, err := net.Listen("tcp", f.clientAddr)
	if err != nil {
		return fmt.Errorf("--client-addr: %w", err)
	}
	meshLn, err := net.Listen("tcp", f.meshAddr)
	if err != nil {
		return fmt.Errorf("--mesh-addr: %w", err)
	}
	var metricsLn net.Listener
	if f.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", f.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	addrs := map[string]string{"client": clientLn.Addr().String(), "mesh": meshLn.Addr().String()}
	if metricsLn != nil {
		addrs["metrics"] = metricsLn.Addr().String()
	}
	if f.addrFile != "" {
		b, _ := json.Marshal(addrs)
		if err := writeFileAtomic(f.addrFile, b, 0o644); err != nil {
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	st := c.Status()
	log.Info("coordinator listening", "client_addr", addrs["client"], "mesh_addr", addrs["mesh"], "metrics_addr", addrs["metrics"],
		"state", st.State, "manifest_version", st.ManifestVersion)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	if f.pprofAddr != "" {
		stop, err := servePprof(f.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	var wg sync.WaitGroup
	var runErr error
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { runErr = c.Run(runCtx) })
	err = srv.Serve(ctx, clientLn, meshLn, mux, metricsLn)
	stopRun() // after the APIs stopped: the last activation counts are flushed
	wg.Wait()
	log.Info("coordinator stopped")
	return errors.Join(err, runErr)
}

// servePprof serves Go's profiles on their own listener and mux, never on an API's.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("serving pprof profiles", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
