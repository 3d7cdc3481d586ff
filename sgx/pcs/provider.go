package pcs

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// Defaults of a [Provider].
const (
	// DefaultRetryInterval is the time between attempts to refresh collateral after a failed
	// attempt, or after one that brought collateral already past its nextUpdate.
	DefaultRetryInterval = time.Minute
	// DefaultFetchTimeout bounds one fetch of a collateral set.
	DefaultFetchTimeout = time.Minute
)

// ProviderConfig configures a [Provider]. Only Client is required.
type ProviderConfig struct {
	// Client fetches the collateral.
	Client *Client
	// Root is the pinned root: every item must chain to its key. Nil means
	// verify.IntelRoot(); tests and simulation pin a simulated root.
	Root *x509.Certificate
	// Dir is the cache directory, created if needed. Empty means memory only. One Provider
	// at a time may use a directory.
	Dir string
	// RetryInterval is the time between refresh attempts while the service fails. Zero means
	// [DefaultRetryInterval].
	RetryInterval time.Duration
	// FetchTimeout bounds one fetch, independently of the callers' contexts (a fetch shared
	// by several callers outlives a caller that gives up). Zero means [DefaultFetchTimeout].
	FetchTimeout time.Duration
}

// Option configures optional collaborators of a [Provider].
type Option func(*options)

type options struct {
	log *slog.Logger
	now func() time.Time
}

// WithLogger sets the logger for fetches, refusals and cache problems. The default discards
// everything (slog.DiscardHandler). A nil l is ignored.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithClock sets the clock that decides validity and refresh times. The default is time.Now.
// A nil now is ignored.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// Provider serves verified collateral per FMSPC and PCK CA type from a memory and disk cache,
// refreshing it from a [Client] (see the package documentation for its rules). It is safe for
// concurrent use.
//
// The cache holds only collateral that verified under the pinned root and whose TCB Info
// names the FMSPC, so it holds at most one set per FMSPC Intel publishes and CA type.
type Provider struct {
	client   *Client
	verifier *verify.Verifier
	dir      string
	retry    time.Duration
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex // guards entries and flights
	entries map[cacheKey]*entry
	flights map[cacheKey]*flight
}

// cacheKey names one collateral set.
type cacheKey struct {
	fmspc [6]byte
	ca    sgx.PCKCAType
}

func (k cacheKey) String() string { return fmt.Sprintf("FMSPC %X (%s CA)", k.fmspc, k.ca) }

// entry is a verified set; it is never modified once stored, only replaced.
type entry struct {
	col       *verify.Collateral
	refreshAt time.Time
}

// flight is a fetch in progress; done is closed once col and err are set.
type flight struct {
	done chan struct{}
	col  *verify.Collateral
	err  error
}

// NewProvider validates cfg, loads and verifies the cache directory (if any) and returns a
// Provider. All configuration problems are reported at once; a set in the directory that does
// not verify is logged and skipped, not an error.
func NewProvider(cfg ProviderConfig, opts ...Option) (*Provider, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("client: required"))
	}
	root := cfg.Root
	if root == nil {
		root = verify.IntelRoot()
	} else if _, err := x509.ParseCertificate(root.Raw); err != nil {
		errs = append(errs, fmt.Errorf("root: expected a parsed certificate with its DER encoding: %w", err))
	}
	if cfg.RetryInterval < 0 || cfg.FetchTimeout < 0 {
		errs = append(errs, fmt.Errorf("retry interval %v, fetch timeout %v: expected zero (the default) or positive durations", cfg.RetryInterval, cfg.FetchTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("collateral provider configuration: %w", err)
	}
	p := &Provider{
		client:   cfg.Client,
		verifier: verify.New(root),
		dir:      cfg.Dir,
		retry:    cmp.Or(cfg.RetryInterval, DefaultRetryInterval),
		timeout:  cmp.Or(cfg.FetchTimeout, DefaultFetchTimeout),
		log:      o.log,
		now:      o.now,
		entries:  map[cacheKey]*entry{},
		flights:  map[cacheKey]*flight{},
	}
	if p.dir != "" {
		if err := p.loadDir(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Collateral returns verified collateral for a platform with FMSPC fmspc whose PCK certificate
// was issued by the PCK CA of type ca. It serves the cached set until its earliest nextUpdate,
// then refreshes it; when the refresh fails it serves the cached set (which may be past its
// nextUpdate: the verifier reports that as CollateralExpired). It fails when no verified set
// exists and none can be fetched, or when ctx ends first (the shared fetch goes on). The
// result is the caller's to change; the cache keeps its own copy.
func (p *Provider) Collateral(ctx context.Context, fmspc [6]byte, ca sgx.PCKCAType) (*verify.Collateral, error) {
	if ca != sgx.PCKCAProcessor && ca != sgx.PCKCAPlatform {
		return nil, fmt.Errorf("collateral for FMSPC %X: CA type %q; expected %q or %q", fmspc, ca, sgx.PCKCAProcessor, sgx.PCKCAPlatform)
	}
	k := cacheKey{fmspc, ca}
	p.mu.Lock()
	if e := p.entries[k]; e != nil && p.now().Before(e.refreshAt) {
		p.mu.Unlock()
		return cloneCollateral(e.col), nil
	}
	f := p.flights[k]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		p.flights[k] = f
		go p.run(context.WithoutCancel(ctx), k, f)
	}
	p.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return cloneCollateral(f.col), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("collateral for %v: %w", k, context.Cause(ctx))
	}
}

// run performs the fetch of flight f and retires it.
func (p *Provider) run(ctx context.Context, k cacheKey, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	f.col, f.err = p.refresh(ctx, k)
	p.mu.Lock()
	delete(p.flights, k)
	p.mu.Unlock()
	close(f.done)
}

// refresh fetches, checks and stores the set for k and returns what to serve: the new set,
// or the cached one when the new one cannot be had.
func (p *Provider) refresh(ctx context.Context, k cacheKey) (*verify.Collateral, error) {
	now := p.now()
	p.mu.Lock()
	old := p.entries[k]
	p.mu.Unlock()
	var cached *verify.Collateral
	if old != nil {
		cached = old.col
	}

	col, err := p.client.Fetch(ctx, k.fmspc, k.ca)
	if err == nil {
		col, err = p.admit(k, col, cached, now)
	}
	if err != nil {
		err = fmt.Errorf("collateral for %v from %s: %w", k, p.client.BaseURL(), err)
		if cached == nil {
			p.log.Warn("collateral refresh failed; no verified copy to serve", "fmspc", hexFMSPC(k), "ca", k.ca, "error", err)
			return nil, err
		}
		p.log.Warn("collateral refresh failed; serving the verified cached copy", "fmspc", hexFMSPC(k), "ca", k.ca,
			"next_update", earliestNextUpdate(cached), "retry_at", now.Add(p.retry), "error", err)
		p.install(k, cached, now.Add(p.retry))
		return cached, nil
	}

	if p.dir != "" {
		if err := p.store(k, col); err != nil {
			p.log.Warn("collateral not written to the cache directory; kept in memory", "fmspc", hexFMSPC(k), "ca", k.ca, "error", err)
		}
	}
	next := earliestNextUpdate(col)
	p.install(k, col, later(next, now.Add(p.retry)))
	p.log.Info("collateral fetched and verified", "fmspc", hexFMSPC(k), "ca", k.ca,
		"tcb_evaluation_data_number", col.TCBInfo.TCBEvaluationDataNumber, "next_update", next)
	return col, nil
}

// admit returns what to cache given a fetched set: the fetched set with any CRL it lacks
// carried over from the cached set, once it verified and is not older than the cached set.
func (p *Provider) admit(k cacheKey, fetched, cached *verify.Collateral, now time.Time) (*verify.Collateral, error) {
	col := carryOver(fetched, cached)
	expired, err := p.check(col, k, now)
	if err != nil {
		return nil, fmt.Errorf("refusing collateral that does not verify: %w", err)
	}
	if cached != nil {
		if err := notOlder(col, cached); err != nil {
			return nil, fmt.Errorf("refusing a rollback: %w", err)
		}
	}
	if expired != nil {
		p.log.Warn("the service sent verified collateral outside its validity", "fmspc", hexFMSPC(k), "ca", k.ca, "error", expired)
	}
	return col, nil
}

func (p *Provider) install(k cacheKey, col *verify.Collateral, refreshAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entries[k] = &entry{col: col, refreshAt: refreshAt}
}

func hexFMSPC(k cacheKey) string { return fmt.Sprintf("%X", k.fmspc) }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
