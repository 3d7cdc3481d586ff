package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
)

// EvidenceVerifier checks a workload's quote. [attest.Verifier] implements it.
type EvidenceVerifier interface {
	Verify(ctx context.Context, quote []byte, at time.Time) (*verify.Result, *verify.Collateral, error)
}

var _ EvidenceVerifier = (*attest.Verifier)(nil)

// Config is what a Coordinator is made of. All fields but DNSNames and IPAddresses are
// required.
type Config struct {
	// Store holds the Coordinator's state. The Coordinator does not close it.
	Store *store.DB
	// Verifier checks workload evidence; Issuer produces the Coordinator's own.
	Verifier EvidenceVerifier
	Issuer   attest.Issuer
	// Simulation marks everything the Coordinator says as insecure: status answers,
	// certificates (via the root CA created in simulation) and logs.
	Simulation bool
	// DNSNames and IPAddresses are added to the Coordinator's TLS certificate, besides
	// localhost, 127.0.0.1 and ::1. Clients do not check host names (they check the
	// deployment root and the Coordinator marker), but other TLS tools may.
	DNSNames    []string
	IPAddresses []net.IP
}

// Option configures optional collaborators of a Coordinator.
type Option func(*Core)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *Core) { c.log = l } }

// WithClock sets the clock. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(c *Core) { c.now = now } }

// WithRegisterer registers the Coordinator's metrics. Default: not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(c *Core) { c.reg = r } }

// CoordinatorURI marks the Coordinator's TLS certificate. Clients accept a server certificate
// only if the deployment root issued it directly and it carries this URI: no workload
// certificate can pass for the Coordinator.
const CoordinatorURI = "urn:cloister:coordinator"

// Core is a Coordinator. It is safe for concurrent use.
type Core struct {
	cfg     Config
	db      *store.DB
	log     *slog.Logger
	now     func() time.Time
	reg     prometheus.Registerer
	metrics *metrics

	recovered *recovery.Record // WithRecoveredRecord: the split to check before anything is written

	root    *pki.CA          // the deployment root; never changes
	tlsCert *tls.Certificate // the Coordinator's TLS certificate, issued by root
	spki    []byte           // DER public key of tlsCert, bound into the Coordinator's quotes
	derive  deriver          // derives per-instance secrets; never changes

	quotes     quoteCache
	quoteSlots chan struct{} // bounds concurrent quote generation
	epochs     epochQuotes
	counts     counts
	audit      auditState
	// recovery describes the recovery split in force for status answers; nil without one.
	recovery atomic.Pointer[api.RecoveryStatus]

	setMu  sync.Mutex   // serializes manifest and secret changes
	shared sharedState  // what dep was read from, on a shared state; guarded by setMu
	mu     sync.RWMutex // guards dep
	// dep is the deployment as of the current manifest; nil while waiting for one.
	// It is replaced, never modified, so readers may keep using an old one.
	dep *deployment
}

// New opens a Coordinator on cfg.Store: it loads the state, or initializes a new deployment
// (root CA, TLS key) in an empty store.
func New(ctx context.Context, cfg Config, opts ...Option) (*Core, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("core: Config.Store is required"))
	}
	if cfg.Verifier == nil {
		errs = append(errs, errors.New("core: Config.Verifier is required"))
	}
	if cfg.Issuer == nil {
		errs = append(errs, errors.New("core: Config.Issuer is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Core{
		cfg:        cfg,
		db:         cfg.Store,
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		quoteSlots: make(chan struct{}, maxConcurrentQuotes),
		epochs:     epochQuotes{making: make(chan struct{}, 1)},
		audit:      auditState{segment: defaultAuditSegment},
	}
	for _, o := range opts {
		o(c)
	}
	c.metrics = newMetrics(c.reg)
	if err := c.loadPKI(ctx); err != nil {
		return nil, err
	}
	if err := c.loadDeriver(ctx); err != nil {
		return nil, err
	}
	if err := c.loadDeployment(ctx); err != nil {
		return nil, err
	}
	c.loadRecoveryStatus()
	if err := c.checkRecoveredRecord(); err != nil {
		return nil, err
	}
	if err := c.counts.load(ctx, c.db); err != nil {
		return nil, fmt.Errorf("load activation counts: %w", err)
	}
	if err := c.checkAuditLog(ctx); err != nil {
		return nil, err
	}
	if err := c.recordStart(ctx); err != nil {
		return nil, fmt.Errorf("audit log: record the start: %w", err)
	}
	c.counts.closed = hourOf(c.now()).Unix()
	c.metrics.setState(c.Status())
	return c, nil
}

// TLSCertificate returns the Coordinator's TLS certificate and key for both APIs.
func (c *Core) TLSCertificate() *tls.Certificate { return c.tlsCert }

// Root returns the deployment's root CA certificate. It never changes.
func (c *Core) Root() *x509.Certificate { return c.root.Cert }

// Status describes the Coordinator's state.
func (c *Core) Status() api.Status {
	s := api.Status{
		State:      api.StateWaitingForManifest,
		Simulation: c.cfg.Simulation,
		TEE:        "sgx",
		Version:    Version,
	}
	if c.cfg.Simulation {
		s.TEE = "sgx-simulation"
		s.Message = "SIMULATION MODE: not secure; anyone with the simulated platform can forge its evidence"
	}
	if d := c.current(); d != nil {
		s.State = api.StateRunning
		s.ManifestVersion = d.version
		s.ManifestDigest = fmt.Sprintf("%x", d.m.Digest())
	}
	if w := c.db.FreshnessWarning(); w != "" {
		// A shared state opened with no check against replay (docs/ha.md): say so until restart.
		s.Message = strings.TrimPrefix(s.Message+"; "+w, "; ")
	}
	sv := c.db.Version()
	s.StateVersion, s.StateHash = sv.N, hex.EncodeToString(sv.Hash[:])
	if n := c.storedCounts(c.ActivationCounts()); len(n) > 0 {
		s.Activations = n
	}
	s.Recovery = c.recoveryStatus()
	if h, err := c.AuditHead(context.Background()); err != nil {
		c.log.Error("sign the audit log's head for the status", "error", err.Error())
	} else {
		s.AuditHead = h
	}
	return s
}

// maxConcurrentQuotes bounds how many of the Coordinator's own quotes are made at once.
const maxConcurrentQuotes = 4

// Version is the Coordinator's software version.
const Version = "0.1.0"

// ManifestVersion returns the current manifest's version, 0 before the first.
func (c *Core) ManifestVersion() int {
	if d := c.current(); d != nil {
		return d.version
	}
	return 0
}

func (c *Core) current() *deployment {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.dep
}

// deployment is everything that follows from one manifest version.
type deployment struct {
	m        *manifest.Manifest
	version  int
	inter    *pki.CA
	interPEM string
	rootPEM  string
	secrets  map[string]*secretRecord // shared secrets by name; user-defined ones only once set
	users    map[string]string        // DER certificate (as string) -> user name
}
