// Package server puts a Coordinator ([core.Core]) on the network: the client API for operators
// and auditors, the workload (mesh) API for launchers, and Prometheus metrics. Handlers bound
// and strictly decode every body, call the core, and render answers and errors as JSON
// (package api). See api/openapi.json for the reference.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/cloister-dev/cloister/internal/ratelog"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/prometheus/client_golang/prometheus"
)

// Server serves a Coordinator's APIs. It is safe for concurrent use.
type Server struct {
	core     *core.Core
	recovery *core.Recovery // set in recovery mode (see NewRecovery), when core is nil
	log      *slog.Logger
	reqs     *prometheus.CounterVec
	unlogged *prometheus.CounterVec
	refusals map[string]*ratelog.Limiter // by API: junk on one must not silence the other
	now      func() time.Time            // the refusal limiter's clock
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRegisterer registers the API request metrics. Default: not registered.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(s *Server) { r.MustRegister(s.reqs, s.unlogged) }
}

// New returns a Server for c.
func New(c *core.Core, opts ...Option) *Server {
	s := &Server{
		core:     c,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
		refusals: map[string]*ratelog.Limiter{"client": newRefusalLimiter(), "mesh": newRefusalLimiter()},
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloister_api_requests_total",
			Help: "API requests by API (client, mesh), route and HTTP status code.",
		}, []string{"api", "route", "code"}),
		unlogged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloister_api_refusals_unlogged_total",
			Help: "Refused requests left out of the log because refusals came faster than it takes; each is still counted in cloister_api_requests_total.",
		}, []string{"api"}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ClientTLSConfig is the TLS configuration of the client API: TLS 1.3, the Coordinator's
// certificate, and optional client certificates, which the core maps to manifest users.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*s.tlsCertificate()},
		ClientAuth:   tls.RequestClientCert,
	}
}

// MeshTLSConfig is the TLS configuration of the workload API. Workloads authenticate with
// their quotes, which bind the connection, not with certificates.
func (s *Server) MeshTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*s.tlsCertificate()},
	}
}

// Serve serves the client API on client and the workload API on mesh (both plain TCP
// listeners; Serve adds TLS), and metrics on metrics if it is not nil (plain HTTP). It returns
// when ctx ends, after a graceful shutdown of at most 5 seconds, or when a server fails.
func (s *Server) Serve(ctx context.Context, client, mesh net.Listener, metrics http.Handler, metricsLn net.Listener) error {
	servers := []*http.Server{
		s.httpServer(s.ClientHandler()),
		s.httpServer(s.MeshHandler()),
	}
	listeners := []net.Listener{tls.NewListener(client, s.ClientTLSConfig()), tls.NewListener(mesh, s.MeshTLSConfig())}
	if metricsLn != nil {
		servers = append(servers, s.httpServer(metrics))
		listeners = append(listeners, metricsLn)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cancel(err)
			}
		})
	}
	<-ctx.Done()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}
