package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/injector"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// injectorFlags are the flags of `cloister injector`.
type injectorFlags struct {
	listen, healthListen     string
	namespace, service       string
	webhookConfiguration     string
	certSecret               string
	certManager              bool
	coordinator, clientAPI   string
	simulation               bool
	simSecret                string
	certHosts                []string
	resources, tolerations   []string
	mrenclave                []string
	mrsigner                 string
	isvprodid, minISVSVN     uint16
	kubeconfig               string
	logFormat, logLevel      string
	insecureAcceptAnyEnclave bool
}

func (a *app) newInjectorCmd() *cobra.Command {
	var f injectorFlags
	cmd := &cobra.Command{
		Use:   "injector",
		Short: "Run the Kubernetes admission webhook that injects Cloister into labelled pods",
		Long: `Run the mutating admission webhook for pods labelled cloister.dev/workload: NAME. It adds the
launcher's CLOISTER_* environment (the Coordinator's workload API, the workload, the pod's UID as
instance ID, the TEE), the SGX device plugin's resources and tolerations, and the DNS names of the
pod's Services that the manifest allows. A pod naming a workload the manifest lacks is denied, and
so is every labelled pod while the Coordinator cannot be reached or verified. Unlabelled pods are
never changed.

The webhook keeps its own CA and serving certificate in --cert-secret, patches the CA into the
caBundle of --webhook-configuration, and renews the certificate before it expires; with
--cert-manager it only reads the Secret cert-manager writes.

The Coordinator is verified by its quote before the manifest is read from it: give its identity
(--coordinator-mrenclave, or --coordinator-mrsigner with --coordinator-isvprodid and
--coordinator-min-isvsvn). With --simulation it is a simulated Coordinator on the platform in
$CLOISTER_SIM_DIR (NOT secure), and pods get that platform from the Secret --simulation-secret
(default cloister-simulation) of their namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runInjector(cmd, &f) },
	}
	f.register(cmd)
	return cmd
}

func (f *injectorFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":8443", "address of the webhook (HTTPS)")
	fl.StringVar(&f.healthListen, "health-listen", ":8081", "address of /healthz, /readyz and /metrics (plain HTTP)")
	fl.StringVar(&f.namespace, "namespace", "", "namespace of the webhook's Secret and Service (default $POD_NAMESPACE)")
	fl.StringVar(&f.service, "service", "cloister-injector", "the webhook's Service, whose DNS names the serving certificate carries")
	fl.StringVar(&f.webhookConfiguration, "webhook-configuration", "cloister-injector", "MutatingWebhookConfiguration whose caBundle is kept current")
	fl.StringVar(&f.certSecret, "cert-secret", "cloister-injector-tls", "Secret holding the CA and serving certificate, shared by replicas")
	fl.BoolVar(&f.certManager, "cert-manager", false, "read the serving certificate from --cert-secret, written by cert-manager, instead of making it")
	fl.StringVar(&f.coordinator, "coordinator", "", "the Coordinator's workload API as pods reach it, host:port (CLOISTER_COORDINATOR)")
	fl.StringVar(&f.clientAPI, "coordinator-client-api", "", "the Coordinator's client API, host:port, asked whether a workload exists")
	fl.BoolVar(&f.simulation, "simulation", false, "the Coordinator is simulated: platform from $CLOISTER_SIM_DIR (NOT secure)")
	fl.StringVar(&f.simSecret, "simulation-secret", injector.SimSecret, "with --simulation: the Secret, in each pod's namespace, holding the simulated platform that pods mount")
	fl.StringArrayVar(&f.certHosts, "cert-host", nil, "another DNS name or IP address for the serving certificate, e.g. 127.0.0.1 when the API server calls the webhook by URL (repeatable)")
	fl.StringArrayVar(&f.resources, "resource", nil, "SGX resource NAME=QUANTITY added to limits and requests (repeatable)")
	fl.StringArrayVar(&f.tolerations, "toleration", nil, "toleration KEY[=VALUE]:EFFECT added to pods (repeatable)")
	fl.StringSliceVar(&f.mrenclave, "coordinator-mrenclave", nil, "expected Coordinator MRENCLAVE, hex (repeatable)")
	fl.StringVar(&f.mrsigner, "coordinator-mrsigner", "", "expected Coordinator MRSIGNER, hex")
	fl.Uint16Var(&f.isvprodid, "coordinator-isvprodid", attest.CoordinatorProdID, "expected Coordinator ISVPRODID (with --coordinator-mrsigner)")
	fl.Uint16Var(&f.minISVSVN, "coordinator-min-isvsvn", 0, "lowest accepted Coordinator ISVSVN (with --coordinator-mrsigner)")
	fl.BoolVar(&f.insecureAcceptAnyEnclave, "insecure-accept-any-enclave", false, "accept any genuine enclave as the Coordinator (its identity is not checked)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server (default: the in-cluster service account)")
	fl.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// config turns the flags into the injector's Config, reporting every problem at once.
func (f *injectorFlags) config(getenv func(string) string) (injector.Config, error) {
	cfg := injector.Config{
		Namespace:            f.namespace,
		Service:              f.service,
		WebhookConfiguration: f.webhookConfiguration,
		CertSecret:           f.certSecret,
		CertManager:          f.certManager,
		Coordinator:          f.coordinator,
		CoordinatorClientAPI: f.clientAPI,
		Simulation:           f.simulation,
		SimSecretName:        f.simSecret,
		ExtraHosts:           f.certHosts,
	}
	var errs []error
	if cfg.Namespace == "" {
		if cfg.Namespace = getenv("POD_NAMESPACE"); cfg.Namespace == "" {
			errs = append(errs, errors.New("--namespace is not set and neither is POD_NAMESPACE"))
		}
	}
	if f.coordinator == "" {
		errs = append(errs, errors.New("--coordinator is required: the workload API address pods reach, e.g. cloister-coordinator.NS.svc:2001"))
	}
	if f.clientAPI == "" {
		errs = append(errs, errors.New("--coordinator-client-api is required: the client API address, e.g. cloister-coordinator.NS.svc:4433"))
	}
	for _, r := range f.resources {
		name, q, err := injector.ParseResource(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("--resource: %w", err))
			continue
		}
		if cfg.Resources == nil {
			cfg.Resources = corev1.ResourceList{}
		}
		cfg.Resources[name] = q
	}
	for _, s := range f.tolerations {
		t, err := injector.ParseToleration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--toleration: %w", err))
			continue
		}
		cfg.Tolerations = append(cfg.Tolerations, t)
	}
	e, err := f.expect(getenv, &cfg)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Expect = e
	return cfg, errors.Join(errs...)
}

// expect is what the Coordinator must prove: a simulated Coordinator on $CLOISTER_SIM_DIR, or
// the given identity under Intel's root.
func (f *injectorFlags) expect(getenv func(string) string, cfg *injector.Config) (client.Expect, error) {
	var errs []error
	var e client.Expect
	if f.simulation {
		dir := getenv("CLOISTER_SIM_DIR")
		if dir == "" {
			return e, errors.New("--simulation needs CLOISTER_SIM_DIR: the simulated platform the Coordinator runs on (the Secret --simulation-secret, mounted)")
		}
		p, err := sim.Load(dir)
		if err != nil {
			return e, fmt.Errorf("--simulation: CLOISTER_SIM_DIR: %w", err)
		}
		if cfg.SimPlatformFiles, err = injector.SimPlatformFiles(dir); err != nil {
			return e, fmt.Errorf("--simulation: %w", err)
		}
		e = client.ExpectSimulated(p.Root())
	} else {
		e.SGXRoot = verify.IntelRoot()
	}
	for _, h := range f.mrenclave {
		d, err := parseDigest(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("--coordinator-mrenclave: %w", err))
		}
		e.MREnclave = append(e.MREnclave, d)
	}
	if f.mrsigner != "" {
		d, err := parseDigest(f.mrsigner)
		if err != nil {
			errs = append(errs, fmt.Errorf("--coordinator-mrsigner: %w", err))
		}
		e.MRSigner, e.ISVProdID, e.MinISVSVN = &d, f.isvprodid, f.minISVSVN
	}
	if len(e.MREnclave) == 0 && e.MRSigner == nil && !f.insecureAcceptAnyEnclave {
		errs = append(errs, errors.New("no expected Coordinator identity: give --coordinator-mrenclave, or --coordinator-mrsigner with --coordinator-isvprodid and --coordinator-min-isvsvn (or --insecure-accept-any-enclave)"))
	}
	return e, errors.Join(errs...)
}

func (f *injectorFlags) logger(w io.Writer) (*slog.Logger, error) {
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

func (f *injectorFlags) restConfig() (*rest.Config, error) {
	if f.kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster and no --kubeconfig: %w", err)
	}
	return c, nil
}

func (a *app) runInjector(cmd *cobra.Command, f *injectorFlags) error {
	cfg, err := f.config(a.getenv)
	if err != nil {
		return usageError(err)
	}
	log, err := f.logger(a.stderr)
	if err != nil {
		return usageError(err)
	}
	rc, err := f.restConfig()
	if err != nil {
		return err
	}
	rc.UserAgent = "cloister-injector"
	if cfg.Kube, err = kubernetes.NewForConfig(rc); err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Log, cfg.Registerer = log, reg
	inj, err := injector.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	health, err := net.Listen("tcp", f.healthListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("--health-listen: %w", err)
	}
	return inj.Run(cmd.Context(), ln, health)
}
