package injector

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/cloister-dev/cloister/client"
)

// Label is the pod label that asks for injection; its value names the workload.
const Label = "cloister.dev/workload"

// Annotations the webhook reads or writes.
const (
	// ContainersAnnotation optionally names, comma-separated, the containers that run the
	// launcher; default: every container of spec.containers.
	ContainersAnnotation = "cloister.dev/containers"
	// InjectedAnnotation records the workload a pod was injected for.
	InjectedAnnotation = "cloister.dev/injected"
)

// Defaults of [Config].
const (
	DefaultManifestTTL   = 10 * time.Second
	DefaultCertValidity  = 365 * 24 * time.Hour
	DefaultCAValidity    = 10 * 365 * 24 * time.Hour
	DefaultCheckInterval = time.Minute
	// MaxReviewSize bounds an AdmissionReview body. The API server refuses objects over
	// about 3 MiB (etcd's request limit), and a review carries one object.
	MaxReviewSize = 4 << 20
)

// Config is what the webhook needs; build it with a literal and call [New].
type Config struct {
	// Namespace holds the webhook's Secret and Service.
	Namespace string
	// Service is the webhook's Service; its DNS names go into the serving certificate.
	Service string
	// WebhookConfiguration is the MutatingWebhookConfiguration whose caBundle is kept current.
	WebhookConfiguration string
	// CertSecret holds the CA and the serving certificate (keys ca.crt, ca.key, tls.crt,
	// tls.key).
	CertSecret string
	// CertManager: a certificate manager writes CertSecret (tls.crt, tls.key) and the
	// caBundle; the webhook only reads and follows it.
	CertManager bool
	// ExtraHosts are more DNS names or IP addresses for the serving certificate (tests that
	// register the webhook by URL on 127.0.0.1).
	ExtraHosts []string
	// CertValidity is the serving certificate's validity; it is renewed at 2/3 of it.
	// Default [DefaultCertValidity].
	CertValidity time.Duration
	// CAValidity is the CA's validity. Default [DefaultCAValidity].
	CAValidity time.Duration
	// CheckInterval is how often the Secret and the caBundle are checked. Default
	// [DefaultCheckInterval], and at most a tenth of CertValidity.
	CheckInterval time.Duration

	// Coordinator is the workload API address injected as CLOISTER_COORDINATOR.
	Coordinator string
	// CoordinatorClientAPI is the client API address the webhook reads the manifest from.
	CoordinatorClientAPI string
	// Expect is what the Coordinator must prove (client.Verify).
	Expect client.Expect
	// ManifestTTL bounds how long a manifest read from the Coordinator is used. A workload
	// not in the cached manifest makes it read again at once (at most once a second). Default
	// [DefaultManifestTTL].
	ManifestTTL time.Duration

	// Simulation marks the Coordinator as simulated: pods get CLOISTER_TEE=simulation and the
	// simulated platform from SimSecret. Otherwise CLOISTER_TEE=gramine.
	Simulation bool
	// SimPlatformFiles are the relative paths of the simulated platform's files
	// ([SimPlatformFiles]); with Simulation they are mounted from the Secret SimSecretName.
	SimPlatformFiles []string
	// SimSecretName is the Secret, in the pod's namespace, holding the simulated platform
	// ([SimSecretData]). Default [SimSecret]; the chart passes the Secret it makes.
	SimSecretName string
	// Resources are added to each injected container's limits (and requests) unless it
	// already has a limit for them.
	Resources corev1.ResourceList
	// Tolerations are added to the pod unless it has them.
	Tolerations []corev1.Toleration
	// ClusterDomain is the cluster's DNS domain. Default "cluster.local".
	ClusterDomain string

	// Kube is the client of the API server.
	Kube kubernetes.Interface
	// Log receives the webhook's log. Default: discard.
	Log *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
}

// Simulated platform delivery: the default name of the Secret every namespace with simulated
// workloads holds (Config.SimSecretName), and where the launcher finds it.
const (
	SimSecret    = "cloister-simulation"
	SimMountPath = "/var/run/cloister/sim"
	simVolume    = "cloister-sim"
)

func (c *Config) setDefaults() {
	if c.SimSecretName == "" {
		c.SimSecretName = SimSecret
	}
	if c.ManifestTTL == 0 {
		c.ManifestTTL = DefaultManifestTTL
	}
	if c.CertValidity == 0 {
		c.CertValidity = DefaultCertValidity
	}
	if c.CAValidity == 0 {
		c.CAValidity = DefaultCAValidity
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckInterval > c.CertValidity/10 {
		c.CheckInterval = c.CertValidity / 10
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	var errs []error
	need := func(v, what string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is empty; expected a value", what))
		}
	}
	need(c.Namespace, "namespace")
	need(c.Service, "service")
	need(c.CertSecret, "certificate secret")
	if !c.CertManager {
		need(c.WebhookConfiguration, "webhook configuration")
	}
	for what, addr := range map[string]string{"coordinator": c.Coordinator, "coordinator client API": c.CoordinatorClientAPI} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: expected host:port", what, addr))
		}
	}
	if c.Kube == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if c.Simulation && len(c.SimPlatformFiles) == 0 {
		errs = append(errs, errors.New("simulation needs the simulated platform's file list"))
	}
	if c.CAValidity < c.CertValidity {
		errs = append(errs, fmt.Errorf("CA validity %v is shorter than the serving certificate's %v", c.CAValidity, c.CertValidity))
	}
	return errors.Join(errs...)
}

// ParseResource parses NAME=QUANTITY, e.g. sgx.intel.com/epc=10Mi.
func ParseResource(s string) (corev1.ResourceName, resource.Quantity, error) {
	name, q, ok := strings.Cut(s, "=")
	if !ok || name == "" || q == "" {
		return "", resource.Quantity{}, fmt.Errorf("resource %q: expected NAME=QUANTITY such as sgx.intel.com/epc=10Mi", s)
	}
	if errs := validation.IsQualifiedName(name); len(errs) > 0 {
		return "", resource.Quantity{}, fmt.Errorf("resource %q: name %q is not a resource name: %s", s, name, strings.Join(errs, "; "))
	}
	qty, err := resource.ParseQuantity(q)
	if err != nil {
		return "", resource.Quantity{}, fmt.Errorf("resource %q: quantity %q: %w", s, q, err)
	}
	if qty.Sign() <= 0 {
		return "", resource.Quantity{}, fmt.Errorf("resource %q: quantity %s; expected more than zero", s, q)
	}
	return corev1.ResourceName(name), qty, nil
}

// ParseToleration parses KEY[=VALUE]:EFFECT: with a value the toleration is Equal, without it
// Exists. EFFECT is NoSchedule, PreferNoSchedule or NoExecute.
func ParseToleration(s string) (corev1.Toleration, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return corev1.Toleration{}, fmt.Errorf("toleration %q: expected KEY[=VALUE]:EFFECT such as sgx.intel.com/epc:NoSchedule", s)
	}
	kv, effect := s[:i], corev1.TaintEffect(s[i+1:])
	switch effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return corev1.Toleration{}, fmt.Errorf("toleration %q: effect %q; expected NoSchedule, PreferNoSchedule or NoExecute", s, effect)
	}
	key, value, hasValue := strings.Cut(kv, "=")
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return corev1.Toleration{}, fmt.Errorf("toleration %q: key %q: %s", s, key, strings.Join(errs, "; "))
	}
	t := corev1.Toleration{Key: key, Effect: effect, Operator: corev1.TolerationOpExists}
	if hasValue {
		if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
			return corev1.Toleration{}, fmt.Errorf("toleration %q: value %q: %s", s, value, strings.Join(errs, "; "))
		}
		t.Operator, t.Value = corev1.TolerationOpEqual, value
	}
	return t, nil
}
