package injector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// MutatePath is the path the webhook configuration's service or URL must name.
const MutatePath = "/mutate"

// Injector is the webhook: admission handler, certificate keeper, health endpoints.
type Injector struct {
	cfg      Config
	informer informers.SharedInformerFactory
	h        *handler
	certs    *certs
	gatherer prometheus.Gatherer
}

// handler answers admission reviews.
type handler struct {
	cfg       *Config
	log       *slog.Logger
	manifests *manifests
	metrics   *metrics
	// svcLister reads the Services the informer keeps; svcSynced reports whether it has
	// caught up with the API server.
	svcLister corelisters.ServiceLister
	svcSynced func() bool
}

// New checks cfg and returns the webhook; [Injector.Run] serves it.
func New(cfg Config) (*Injector, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("injector configuration: %w", err)
	}
	var gatherer prometheus.Gatherer
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, gatherer = reg, reg
	} else if g, ok := cfg.Registerer.(prometheus.Gatherer); ok {
		gatherer = g
	}
	log := cfg.Log
	if cfg.Simulation {
		log = log.With("simulation", true)
		log.Warn("SIMULATION MODE: pods are injected for a simulated Coordinator; they are NOT protected by SGX")
	}
	m := newMetrics(cfg.Registerer)
	inj := &Injector{cfg: cfg, gatherer: gatherer}
	inj.h = &handler{cfg: &inj.cfg, log: log, metrics: m, manifests: &manifests{
		addr: cfg.CoordinatorClientAPI, expect: cfg.Expect, ttl: cfg.ManifestTTL, now: time.Now, onRead: m.read,
	}}
	inj.informer = informers.NewSharedInformerFactory(cfg.Kube, 10*time.Minute)
	svc := inj.informer.Core().V1().Services()
	inj.h.svcLister, inj.h.svcSynced = svc.Lister(), svc.Informer().HasSynced
	inj.certs = &certs{cfg: &inj.cfg, now: time.Now, m: m, log: log}
	return inj, nil
}

// Run serves admission reviews over TLS on ln and /healthz, /readyz and /metrics over plain
// HTTP on health until ctx ends, keeping the serving certificate current. It returns nil after
// a clean stop.
func (inj *Injector) Run(ctx context.Context, ln, health net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+MutatePath, inj.h.serveMutate)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{GetCertificate: inj.certs.getCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(inj.h.log.Handler(), slog.LevelWarn),
	}
	hmux := http.NewServeMux()
	hmux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hmux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := inj.certs.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if inj.gatherer != nil {
		hmux.Handle("GET /metrics", promhttp.HandlerFor(inj.gatherer, promhttp.HandlerOpts{}))
	}
	hsrv := &http.Server{Handler: hmux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("webhook server: %w", err)
			cancel(err)
		}
	})
	wg.Go(func() {
		if err := hsrv.Serve(health); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("health server: %w", err)
			cancel(err)
		}
	})
	wg.Go(func() { inj.keepCerts(ctx) })
	inj.informer.Start(ctx.Done())
	defer inj.informer.Shutdown()
	inj.h.log.Info("injector serving", "addr", ln.Addr().String(), "health", health.Addr().String(),
		"coordinator", inj.cfg.Coordinator, "coordinator_client_api", inj.cfg.CoordinatorClientAPI, "cert_manager", inj.cfg.CertManager)

	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err := errors.Join(srv.Shutdown(sctx), hsrv.Shutdown(sctx))
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// keepCerts syncs the certificates now and every CheckInterval, sooner after a failure.
func (inj *Injector) keepCerts(ctx context.Context) {
	for {
		wait := inj.cfg.CheckInterval
		if err := inj.certs.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			inj.h.log.Warn("serving certificate check failed; retrying", "error", err)
			wait = min(wait, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
