package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"

	"github.com/cloister-dev/cloister/coordinator"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/sgx/pcs"
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
	state       string
	stateNS     string
	stateName   string
	kubeconfig  string
	peerAddr    string
	peerService string
	peerDial    string
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
	fl.StringVar(&f.state, "state", "embedded", "state backend: embedded (--data-dir/state.db, one process) or kubernetes (Secrets shared by replicas; --data-dir keeps the sealed data key)")
	fl.StringVar(&f.stateNS, "state-namespace", "", "namespace of the state's Secrets (--state kubernetes)")
	fl.StringVar(&f.stateName, "state-name", "", "name of the state's manifest Secret; shards are named NAME-<random> (--state kubernetes)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the API server holding the state (--state kubernetes); empty: the pod's service account")
	fl.StringVar(&f.peerAddr, "peer-addr", "", "address where this replica gives the data key to replicas that prove by attestation they are this Coordinator (--state kubernetes); empty: off")
	fl.StringVar(&f.peerService, "peer-service", "", "Service whose EndpointSlices in --state-namespace list the replicas to ask for the data key when this CPU has no copy (port named \"peer\", else --peer-addr's) (--state kubernetes)")
	// For tests on a bare API server, which refuses loopback addresses in EndpointSlices.
	fl.StringVar(&f.peerDial, "peer-dial-host", "", "dial this host instead of the peers' EndpointSlice addresses, keeping their ports (tests only)")
	fl.MarkHidden("peer-dial-host")
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

// coordinatorGOGC is the Coordinator's GC target unless GOGC is set. Activations allocate
// briefly-lived buffers (quotes, JSON, certificates); at the default of 100 the collector and the
// scavenger returning memory cost ~15% of an activation's CPU. The heap stays small (tens of
// MiB), so trading some memory for CPU is right here.
const coordinatorGOGC = 400

// config turns the flags into the daemon's Config.
func (f *coordinatorFlags) config(getenv func(string) string) coordinator.Config {
	apiKey := f.pcsAPIKey
	if apiKey == "" {
		apiKey = getenv("CLOISTER_PCS_API_KEY")
	}
	return coordinator.Config{
		DataDir:        f.dataDir,
		ClientAddr:     f.clientAddr,
		MeshAddr:       f.meshAddr,
		MetricsAddr:    f.metricsAddr,
		PprofAddr:      f.pprofAddr,
		Simulation:     f.simulation,
		PCCSURL:        f.pccsURL,
		PCSAPIKey:      apiKey,
		DNSNames:       f.dnsNames,
		IPAddresses:    f.ips,
		State:          f.state,
		StateNamespace: f.stateNS,
		StateName:      f.stateName,
		Kubeconfig:     f.kubeconfig,
		PeerAddr:       f.peerAddr,
		PeerService:    f.peerService,
		PeerDialHost:   f.peerDial,
	}
}

func (a *app) runCoordinator(cmd *cobra.Command, f *coordinatorFlags) error {
	ctx := cmd.Context()
	if a.getenv("GOGC") == "" {
		debug.SetGCPercent(coordinatorGOGC)
	}
	log, err := f.logger(os.Stderr)
	if err != nil {
		return err
	}
	c, err := coordinator.New(ctx, f.config(a.getenv), coordinator.WithLogger(log))
	if err != nil {
		return err
	}
	if f.addrFile != "" {
		b, _ := json.Marshal(c.Addrs())
		if err := atomicfile.Write(f.addrFile, b, 0o644); err != nil {
			c.Close()
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	return c.Run(ctx)
}
