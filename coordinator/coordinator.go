package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/coordinator/peer"
	"github.com/cloister-dev/cloister/coordinator/server"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what a Coordinator daemon is made of. DataDir, ClientAddr and MeshAddr are
// required; the rest is optional.
type Config struct {
	// DataDir holds the sealed state (and, in simulation, the simulated seal key). It is
	// created 0700 if missing.
	DataDir string
	// ClientAddr and MeshAddr are the TCP addresses of the client API (operators, auditors)
	// and the workload API (launchers). Port 0 picks a free port; see [Coordinator.Addrs].
	ClientAddr, MeshAddr string
	// MetricsAddr, if set, serves Prometheus metrics over plain HTTP.
	MetricsAddr string
	// PprofAddr, if set, serves Go's profiles over plain HTTP on their own mux. For
	// diagnosis only: never expose it.
	PprofAddr string
	// Simulation is the directory of a simulated SGX platform to run on instead of SGX. Not
	// secure: it is said in every status answer, log line and certificate.
	Simulation string
	// PCCSURL is the Intel PCS or PCCS certification API for collateral (SGX only).
	// Default: pcs.IntelPCSURL.
	PCCSURL string
	// PCSAPIKey is the Intel PCS subscription key, if the service needs one (SGX only).
	PCSAPIKey string
	// DNSNames and IPAddresses are added to the Coordinator's TLS certificate.
	DNSNames    []string
	IPAddresses []net.IP
	// State is the state backend: StateEmbedded (the default, "") or StateKubernetes, which
	// keeps the state in Secrets named StateName in StateNamespace, shared by every replica,
	// through the API server of Kubeconfig ("": the pod's in-cluster configuration).
	State, StateNamespace, StateName, Kubeconfig string
	// PeerAddr, with StateKubernetes only, is the listen address of the peer key exchange:
	// a replica holding the data key gives it there to a replica that proves by attestation
	// that it is this Coordinator (package coordinator/peer). Empty: this replica gives nothing.
	PeerAddr string
	// PeerService, with StateKubernetes only, is the Service whose EndpointSlices (in
	// StateNamespace) list the peers to ask for the data key when this replica's seal key has
	// no copy of it; they are reached on the slice's port named "peer", else PeerAddr's port.
	// Empty: no peer is asked.
	PeerService string
	// PeerDialHost, if set, replaces the host of every peer address found in the
	// EndpointSlices, keeping its port. It is for tests on a bare API server, which refuses
	// loopback addresses in EndpointSlices although the replicas listen on loopback there.
	PeerDialHost string
}

func (cfg *Config) validate() error {
	var errs []error
	if err := cfg.validateState(); err != nil {
		errs = append(errs, err)
	}
	if cfg.DataDir == "" {
		errs = append(errs, errors.New("data directory: required"))
	}
	if cfg.ClientAddr == "" {
		errs = append(errs, errors.New("client API address: required"))
	}
	if cfg.MeshAddr == "" {
		errs = append(errs, errors.New("workload API address: required"))
	}
	if cfg.PCCSURL == "" {
		cfg.PCCSURL = pcs.IntelPCSURL
	}
	return errors.Join(errs...)
}

// Option configures optional collaborators.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg *prometheus.Registry
}

// WithLogger sets the logger. Default: discard. In simulation every line carries
// simulation=true.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegistry sets the Prometheus registry the metrics endpoint serves and every part
// registers in. Default: a new registry with the Go and process collectors.
func WithRegistry(r *prometheus.Registry) Option { return func(o *options) { o.reg = r } }

// Addrs are the addresses a Coordinator listens on; Metrics and Pprof are empty when off.
type Addrs struct {
	Client  string `json:"client"`
	Mesh    string `json:"mesh"`
	Metrics string `json:"metrics,omitempty"`
	Pprof   string `json:"pprof,omitempty"`
	Peer    string `json:"peer,omitempty"`
}

// Coordinator is an assembled Coordinator daemon.
type Coordinator struct {
	log *slog.Logger
	reg *prometheus.Registry

	mu   sync.Mutex // guards db, core and srv, which a recovery sets (see recovery.go)
	db   *store.DB
	core *core.Core
	srv  *server.Server

	// rec and rsrv are set in recovery mode; handoffs then own the client and mesh listeners.
	rec      *core.Recovery
	rsrv     *server.Server
	handoffs []*handoff
	recViews []*view // the recovery server's views of the handoffs, guarded by mu

	client, mesh, metrics, pprof net.Listener
	// peer is the peer key exchange's listener (Config.PeerAddr), served once the data key is
	// here; shared and tee are what a recovery of a shared state and the exchange need.
	peer   net.Listener
	shared *sharedState
	tee    *tee
	cfg    Config
	// recoverMu makes a recovery by the key holders and a key a peer gives in recovery mode
	// (recovery.go) exclude each other: one of them starts the core.
	recoverMu sync.Mutex

	closeOnce sync.Once
}

// New assembles a Coordinator: it sets up the TEE, opens the state in cfg.DataDir and binds
// the listeners. It does not serve yet; call Run, or Close to release everything.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Coordinator, err error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("coordinator config: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
		o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	log := o.log
	if cfg.Simulation != "" {
		log = log.With("simulation", true)
	}
	c := &Coordinator{log: log, reg: o.reg, cfg: cfg}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	t, err := newTEE(&cfg, log)
	if err != nil {
		return nil, err
	}
	c.tee = t
	c.db, c.shared, err = openState(ctx, cfg, t, log)
	switch {
	case errors.Is(err, store.ErrNoKey) && c.shared != nil:
		if err := c.startRecovery(ctx, cfg, t, err); err != nil {
			return nil, err
		}
	case errors.Is(err, store.ErrUnseal):
		if err := c.startRecovery(ctx, cfg, t, err); err != nil {
			return nil, err
		}
	case errors.Is(err, store.ErrUnavailable):
		// Nothing is known about the key: the API server, the quote or the collateral service
		// did not answer. Recovery mode would be wrong; a restart tries again.
		return nil, fmt.Errorf("open state in %s: %w (a transient failure: the Coordinator stops so that it is restarted and tries again)", cfg.DataDir, err)
	case err != nil:
		return nil, fmt.Errorf("open state in %s: %w", cfg.DataDir, err)
	default:
		c.core, err = core.New(ctx, core.Config{
			Store: c.db, Verifier: t.verifier, Issuer: t.issuer, Simulation: t.simulation,
			DNSNames: cfg.DNSNames, IPAddresses: cfg.IPAddresses,
		}, core.WithLogger(log), core.WithRegisterer(c.reg))
		if err != nil {
			return nil, err
		}
		c.srv = server.New(c.core, server.WithLogger(log), server.WithRegisterer(c.reg))
	}
	for _, l := range []struct {
		ln         *net.Listener
		addr, what string
	}{
		{&c.client, cfg.ClientAddr, "client API"},
		{&c.mesh, cfg.MeshAddr, "workload API"},
		{&c.metrics, cfg.MetricsAddr, "metrics"},
		{&c.pprof, cfg.PprofAddr, "pprof"},
		{&c.peer, cfg.PeerAddr, "peer key exchange"},
	} {
		if l.addr == "" {
			continue
		}
		if *l.ln, err = net.Listen("tcp", l.addr); err != nil {
			return nil, fmt.Errorf("%s address: %w", l.what, err)
		}
	}
	if c.rec != nil {
		// Recovery mode serves the client and workload listeners first, the recovered state
		// after it: handoffs own them from the start (see runRecovery).
		c.handoffs = []*handoff{newHandoff(c.client), newHandoff(c.mesh)}
		c.client, c.mesh = nil, nil
	}
	return c, nil
}

// Core returns the Coordinator's core, for tests and in-process tools; nil in recovery mode
// until the recovery completes.
func (c *Coordinator) Core() *core.Core {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core
}

// Recovery returns the recovery mode, or nil if the Coordinator started normally.
func (c *Coordinator) Recovery() *core.Recovery { return c.rec }

// Addrs returns the bound addresses.
func (c *Coordinator) Addrs() Addrs {
	addr := func(ln net.Listener) string {
		if ln == nil {
			return ""
		}
		return ln.Addr().String()
	}
	a := Addrs{Client: addr(c.client), Mesh: addr(c.mesh), Metrics: addr(c.metrics), Pprof: addr(c.pprof), Peer: addr(c.peer)}
	if len(c.handoffs) == 2 {
		a.Client, a.Mesh = addr(c.handoffs[0].ln), addr(c.handoffs[1].ln)
	}
	return a
}

// Run serves both APIs, metrics and pprof until ctx ends or a server fails, then shuts the
// APIs down (at most 5 s for requests in flight), flushes the activation counts, and closes the
// listeners and the store. It returns nil after a clean stop.
func (c *Coordinator) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, c.Close()) }()
	addrs := c.Addrs()
	st := c.status()
	c.log.Info("coordinator listening", "client_addr", addrs.Client, "mesh_addr", addrs.Mesh, "metrics_addr", addrs.Metrics,
		"state", st.State, "manifest_version", st.ManifestVersion)
	if c.pprof != nil {
		stop := servePprof(c.pprof)
		defer stop()
		c.log.Warn("serving pprof profiles", "addr", addrs.Pprof)
	}
	client, mesh := c.client, c.mesh
	if c.rec != nil {
		// Without the key there is nothing to give: peers asking are turned away at once
		// rather than left to time out.
		stopRefusing := refuseAll(c.peer)
		recovered, err := c.runRecovery(ctx)
		stopRefusing()
		if !recovered {
			c.log.Info("coordinator stopped", "state", api.StateRecovery)
			return err
		}
		client, mesh = c.handoffs[0].view(), c.handoffs[1].view()
	}
	var metrics http.Handler
	if c.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}))
		metrics = mux
	}
	var wg sync.WaitGroup
	var runErr error
	// The core's background work stops after the APIs: the last activation counts they
	// made are flushed.
	coreCtx, stopCore := context.WithCancel(context.WithoutCancel(ctx))
	cr, srv := c.Core(), c.server()
	var ps *peer.Server
	if c.peer != nil {
		if ps, err = c.peerServer(ctx); err != nil {
			stopCore()
			return err
		}
	}
	wg.Go(func() { runErr = cr.Run(coreCtx) })
	var peerErr error
	peerCtx, stopPeer := context.WithCancel(ctx)
	defer stopPeer()
	if ps != nil {
		ln := c.peer
		c.peer = nil // Serve closes it
		wg.Go(func() { peerErr = ps.Serve(peerCtx, ln) })
		c.log.Info("giving the data key to attested peers", "peer_addr", addrs.Peer)
	}
	if c.shared != nil {
		// Shards a crashed or interrupted commit left behind are deleted by every replica in
		// turn; any one of them would do.
		wg.Go(func() { c.shared.remote.RunSweeper(peerCtx, sweepInterval, kubestate.DefaultSweepGrace) })
	}
	err = srv.Serve(ctx, client, mesh, metrics, c.metrics)
	c.client, c.mesh, c.metrics = nil, nil, nil // Serve closed them
	stopPeer()
	stopCore()
	wg.Wait()
	c.log.Info("coordinator stopped")
	return errors.Join(err, runErr, peerErr)
}

// Close releases what New acquired. Run calls it; call it only for a Coordinator that is
// never run. It is safe to call more than once.
func (c *Coordinator) Close() error {
	var err error
	c.closeOnce.Do(func() {
		for _, ln := range []net.Listener{c.client, c.mesh, c.metrics, c.pprof, c.peer} {
			if ln != nil {
				ln.Close()
			}
		}
		for _, h := range c.handoffs {
			h.Close()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.db != nil {
			err = c.db.Close()
		}
	})
	return err
}

func (c *Coordinator) server() *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv
}

// status is the state to log at start: the core's, or recovery mode's.
func (c *Coordinator) status() api.Status {
	if cr := c.Core(); cr != nil {
		return cr.Status()
	}
	return c.rec.Status()
}

// servePprof serves Go's profiles on their own mux, never on an API's.
func servePprof(ln net.Listener) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		srv.Close()
		<-done
	}
}
