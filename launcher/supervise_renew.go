package launcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// renewer keeps a supervised application's workload certificate valid: before it expires, it
// activates again, with a new key and a new quote over a new verified connection, replaces the
// delivered files and signals the application.
//
// Each renewal is an activation like the first: the Coordinator checks the quote against the
// current manifest, counts it against the workload's max_activations and renders the files
// from the current templates and secrets. The instance cannot prove to the Coordinator that it
// is the one that activated before (its instance ID comes from the host), so a renewal is not
// told apart from a new instance: a workload with max_activations needs room for its renewals.
type renewer struct {
	launch *launch
	// env and argv are what the application was started with.
	env, argv []string
	// from is when the certificate in use was issued (by the launcher's clock), notAfter when
	// it expires.
	from, notAfter time.Time
	reload         syscall.Signal
	// signal sends a signal to the application.
	signal func(os.Signal) error
	// now is the clock; default time.Now.
	now func() time.Time
}

// renewFraction is the part of a certificate's validity after which it is renewed; the jitter,
// up to renewJitter of the validity, is taken off so that instances started together do not
// renew together.
const (
	renewFraction = 2.0 / 3
	renewJitter   = 0.1
)

// maxRenewBackoff bounds the wait between failed renewals.
const maxRenewBackoff = 5 * time.Minute

// renewAt returns when a certificate issued at from and valid until na is renewed.
func renewAt(from, na time.Time) time.Time {
	v := na.Sub(from)
	return from.Add(time.Duration(float64(v) * (renewFraction - renewJitter*rand.Float64())))
}

// finalRefusalBackoff is how often a renewal the Coordinator refuses outright is asked for
// again: an operator may fix the manifest meanwhile.
const finalRefusalBackoff = 10 * time.Minute

// run renews until ctx ends.
func (r *renewer) run(ctx context.Context) {
	if r.now == nil {
		r.now = time.Now
	}
	log := r.launch.log
	for {
		at := renewAt(r.from, r.notAfter)
		log.Info("workload certificate renewal scheduled", "at", at.UTC().Format(time.RFC3339Nano), "not_after", r.notAfter.UTC().Format(time.RFC3339))
		if !sleep(ctx, at.Sub(r.now())) {
			return
		}
		if !r.now().Before(r.notAfter) { // the machine slept, or the clock jumped
			log.Error("WORKLOAD CERTIFICATE EXPIRED before it was renewed; renewing now", "expired", r.notAfter.UTC().Format(time.RFC3339))
		}
		validity := r.notAfter.Sub(r.from)
		backoff := min(time.Second, validity/20)
		lastRefusal, expiredSaid := "", false
		for attempt := 1; ; attempt++ {
			err := r.renew(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !retryable(err) {
				// The Coordinator refused (activation limit, policy, a workload gone): only a
				// manifest change helps. Say so once per reason and ask again rarely.
				left := r.notAfter.Sub(r.now())
				_, rolledBack := errors.AsType[*StateRolledBackError](err)
				switch {
				case rolledBack && err.Error() != lastRefusal:
					log.Error("COORDINATOR STATE WENT BACKWARDS: renewal refused; the application keeps its current certificate until it expires (asking again every "+finalRefusalBackoff.String()+")",
						"attempt", attempt, "expires", r.notAfter.UTC().Format(time.RFC3339), "reason", err.Error())
					lastRefusal = err.Error()
				case left <= 0 && !expiredSaid:
					log.Error("WORKLOAD CERTIFICATE EXPIRED: the Coordinator refuses to renew it and the application still runs with the expired certificate; a manifest change is needed",
						"attempt", attempt, "expired", r.notAfter.UTC().Format(time.RFC3339), "reason", err.Error())
					expiredSaid, lastRefusal = true, err.Error()
				case err.Error() != lastRefusal:
					log.Error("the Coordinator refuses to renew the workload certificate; a manifest change is needed (asking again every "+finalRefusalBackoff.String()+")",
						"attempt", attempt, "expires", r.notAfter.UTC().Format(time.RFC3339), "reason", err.Error())
					lastRefusal = err.Error()
				}
				wait := finalRefusalBackoff
				if left > 0 && left < wait {
					wait = left // ask once more at expiry, and say it expired
				}
				if !sleep(ctx, wait) {
					return
				}
				continue
			}
			if left := r.notAfter.Sub(r.now()); left > 0 {
				log.Warn("renewal of the workload certificate failed; retrying", "attempt", attempt, "in", backoff,
					"expires_in", left.Round(time.Second), "reason", err.Error())
			} else {
				log.Error("WORKLOAD CERTIFICATE EXPIRED: renewal keeps failing and the application still runs with the expired certificate; retrying",
					"attempt", attempt, "in", backoff, "expired", r.notAfter.UTC().Format(time.RFC3339), "reason", err.Error())
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, max(time.Second, min(validity/10, maxRenewBackoff)))
		}
	}
}

// renew activates once more (trying once: run retries), writes the delivered files and signals
// the application. A failure changes nothing the application sees.
func (r *renewer) renew(ctx context.Context) error {
	l := r.launch
	start := time.Now()
	once := *l
	once.cfg.RetryTimeout = 0
	a, err := once.activate(ctx)
	if err != nil {
		return err
	}
	next, err := l.seen.check(a.resp, a.activated)
	if err != nil {
		// An older (or forked) state may be one restored from a backup to undo a revocation,
		// a secret rotation or a manifest update; nothing from it is installed. The application
		// keeps its current certificate and files; run asks again rarely and says when the
		// certificate expires.
		return err
	}
	if err := checkDelivered(l.m, a.resp.Files); err != nil { // a manifest update may have changed the files
		return err
	}
	if err := writeFiles(l.store, a.resp.Files, l.uid, l.gid); err != nil {
		return err
	}
	r.from, r.notAfter = a.activated, a.notAfter
	l.seen = next
	l.log.Info("workload certificate renewed", "serial", a.serial, "not_after", a.notAfter.UTC().Format(time.RFC3339),
		"files", len(a.resp.Files), "manifest_version", a.resp.ManifestVersion, "took", time.Since(start).Round(time.Millisecond))
	if changed := changedEnv(r.env, a.env); len(changed) > 0 || !slices.Equal(r.argv, a.argv) {
		l.log.Warn("the renewed configuration changes the application's environment or arguments, which a running process cannot take; restart the container to apply them",
			"env_changed", strings.Join(changed, ","), "argv_changed", !slices.Equal(r.argv, a.argv))
	}
	if a.reload != 0 {
		if err := r.signal(a.reload); err != nil {
			l.log.Warn("signal the application to reload its files", "signal", a.reload.String(), "reason", err.Error())
		} else {
			l.log.Info("application signalled to reload its files", "signal", a.reload.String())
		}
	}
	return nil
}

// changedEnv returns the names of the variables that differ between two environments, never
// their values (which may be secrets).
func changedEnv(old, cur []string) []string {
	vals := func(env []string) map[string]string {
		m := make(map[string]string, len(env))
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	o, c := vals(old), vals(cur)
	var names []string
	for k, v := range c {
		if ov, ok := o[k]; !ok || ov != v {
			names = append(names, k)
		}
	}
	for k := range o {
		if _, ok := c[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// sleep waits for d or until ctx ends, and says whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
