package launcher

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/enclave"
)

// TEE kinds the launcher can attest with (values of EnvTEE), defined in package enclave, which
// the converter shares.
const (
	TEEGramine    = enclave.TEEGramine
	TEESimulation = enclave.TEESimulation
)

// Environment variables that configure the launcher (see package enclave, which defines them
// once for the launcher and the converter). They come from the host and are not trusted: they
// choose where to connect, not whom to trust. Whom to trust is in the signed enclave manifest.
const (
	EnvCoordinator     = enclave.EnvCoordinator     // host:port of the Coordinator's workload API
	EnvWorkload        = enclave.EnvWorkload        // workload name in the deployment manifest
	EnvInstance        = enclave.EnvInstance        // instance ID; default: the container ID, else random
	EnvTEE             = enclave.EnvTEE             // gramine or simulation; default: detected
	EnvSimDir          = enclave.EnvSimDir          // simulated SGX platform directory
	EnvEnclaveManifest = enclave.EnvEnclaveManifest // default DefaultEnclaveManifest
	EnvRetryTimeout    = enclave.EnvRetryTimeout    // how long to retry activation; default 2m
	EnvDNSNames        = enclave.EnvDNSNames        // DNS names to request, comma-separated
)

// DefaultEnclaveManifest is where the converter puts the signed enclave manifest.
const DefaultEnclaveManifest = enclave.ManifestPath

// Config is what one launch needs.
type Config struct {
	Coordinator     string
	Workload        string
	Instance        string
	TEE             string
	SimDir          string
	EnclaveManifest string
	// DNSNames are DNS names requested for the workload certificate (EnvDNSNames); the
	// Coordinator refuses the activation if the deployment manifest does not allow one.
	DNSNames []string
	// RetryTimeout is how long activation is retried while the Coordinator is unreachable or
	// not ready; 0 tries once. When the attested connection closes under an activation, the
	// launcher verifies the Coordinator again on a new connection and retries at once, up to 3
	// times, whatever RetryTimeout is.
	RetryTimeout time.Duration
	// HostEnv is the launcher's own environment; only what the enclave manifest allows
	// reaches the application.
	HostEnv []string
	// GramineDir is Gramine's attestation directory. Default /dev/attestation.
	GramineDir string
	// Log receives progress and errors; never secrets. Default: discard.
	Log *slog.Logger

	// deliveredDir replaces DeliveredDir in tests.
	deliveredDir string
}

// ConfigFromEnv reads a Config from environment variables (see the Env* constants), reporting
// every problem at once.
func ConfigFromEnv(getenv func(string) string, environ []string, stderr io.Writer) (Config, error) {
	cfg := Config{
		Coordinator:     getenv(EnvCoordinator),
		Workload:        getenv(EnvWorkload),
		Instance:        getenv(EnvInstance),
		TEE:             getenv(EnvTEE),
		SimDir:          getenv(EnvSimDir),
		EnclaveManifest: getenv(EnvEnclaveManifest),
		RetryTimeout:    2 * time.Minute,
		HostEnv:         environ,
		Log:             slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	var errs []error
	if cfg.Coordinator == "" {
		errs = append(errs, fmt.Errorf("%s is not set; expected host:port of the Coordinator's workload API", EnvCoordinator))
	}
	if cfg.Workload == "" {
		errs = append(errs, fmt.Errorf("%s is not set; expected the workload's name in the deployment manifest", EnvWorkload))
	}
	if cfg.Instance == "" {
		id, source := defaultInstance(os.ReadFile)
		cfg.Instance = id
		if source != "" {
			cfg.Log.Info(fmt.Sprintf("instance ID not set; using the container ID %s from %s", id, source))
		} else {
			cfg.Log.Warn(fmt.Sprintf("instance ID not set and the runtime exposes no container ID; using the random %s, "+
				"so each start of this container is a new instance (set %s to keep one)", id, EnvInstance))
		}
	}
	if cfg.EnclaveManifest == "" {
		cfg.EnclaveManifest = DefaultEnclaveManifest
	}
	if v := getenv(EnvRetryTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: expected a duration such as 2m", EnvRetryTimeout, v))
		}
		cfg.RetryTimeout = d
	}
	if v := getenv(EnvDNSNames); v != "" {
		names, err := parseDNSNames(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvDNSNames, err))
		}
		cfg.DNSNames = names
	}
	switch strings.ToLower(cfg.TEE) {
	case "":
	case TEEGramine, TEESimulation:
		cfg.TEE = strings.ToLower(cfg.TEE)
	default:
		errs = append(errs, fmt.Errorf("%s=%q: expected %s or %s", EnvTEE, cfg.TEE, TEEGramine, TEESimulation))
	}
	return cfg, errors.Join(errs...)
}
