package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/store"
)

// countFlushInterval is how often counts of unlimited workloads reach the store.
const countFlushInterval = 2 * time.Second

// counts are the activation counts of all workloads. Counts of workloads with a limit are
// written to the store before their activation succeeds: a limit must survive a crash. Counts of
// unlimited workloads are statistics: they are kept here and flushed every few seconds and at
// shutdown, which keeps an fsync off the path of every activation; a crash may lose the last
// seconds of them, never a limit.
//
// The same flush carries the activation results of the audit log: counts by workload, hour
// and result (accepted, refused.<code>), added up in the store while the hour is open and
// written to the log as one entry per workload once it is over (see closeActivationHours).
// Accepted activations of workloads with a limit are added in the transaction that counts
// them, like the limit.
type counts struct {
	mu    sync.Mutex // guards total, dirty, flushed and results
	total map[string]uint64
	dirty map[string]bool
	// flushed is total as of the last flush (or load) of each workload: a flush adds the
	// difference to the stored count, so that replicas sharing a state add up their counts.
	flushed map[string]uint64
	results map[actKey]activationCounts // not yet in the store
	// closed is the hour (Unix seconds) before which every stored hour was closed.
	closed int64
}

func (c *counts) load(ctx context.Context, db *store.DB) error {
	c.total, c.dirty, c.results = map[string]uint64{}, map[string]bool{}, map[actKey]activationCounts{}
	c.flushed = map[string]uint64{}
	return db.View(ctx, func(tx *store.Tx) error {
		return tx.ForEach(bucketCounts, func(k string, v []byte) error {
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("state %s/%s is corrupt: %q is not a count", bucketCounts, k, v)
			}
			c.total[k], c.flushed[k] = n, n
			return nil
		})
	})
}

// add counts one activation of an unlimited workload at now and returns the new total.
func (c *counts) add(workload string, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total[workload]++
	c.dirty[workload] = true
	c.resultLocked(keyOf(workload, now), activationAccepted)
	return c.total[workload]
}

// refused counts one refused activation of workload at now; result is the error code.
func (c *counts) refused(workload string, now time.Time, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resultLocked(keyOf(workload, now), refusalClass(result))
}

func (c *counts) resultLocked(k actKey, result string) {
	r := c.results[k]
	if r == nil {
		r = activationCounts{}
		c.results[k] = r
	}
	r[result]++
}

func (c *counts) get(workload string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total[workload]
}

// committed records a count that was written to the store.
func (c *counts) committed(workload string, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.total[workload]
	c.total[workload] = max(old, n)
	c.flushed[workload] += c.total[workload] - old // stored already: not to be added again
}

// snapshot returns, for each workload counted since the last flush, its total now; the
// activation results not yet stored; and the hour before which all hours are closed.
func (c *counts) snapshot() (map[string]uint64, map[actKey]activationCounts, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.dirty))
	for w := range c.dirty {
		out[w] = c.total[w]
	}
	clear(c.dirty)
	results := c.results
	c.results = map[actKey]activationCounts{}
	return out, results, c.closed
}

// flush writes the counts that changed since the last flush, and the activation results to the
// audit log's open hours; it closes the hours that are over (every hour when all is set, at
// shutdown). Stored counts never go down.
func (c *Core) flushCounts(ctx context.Context, all bool) error {
	snap, results, closed := c.counts.snapshot()
	now := c.now()
	closeAt, hour := now, hourOf(now).Unix()
	if all {
		closeAt = time.Time{}
	}
	closing := all || closed < hour
	if len(snap) == 0 && len(results) == 0 && !closing {
		return nil
	}
	c.counts.mu.Lock()
	added := make(map[string]uint64, len(snap)) // activations counted here since the last flush
	for w, n := range snap {
		added[w] = n - min(n, c.counts.flushed[w])
	}
	c.counts.mu.Unlock()
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		for k, r := range results {
			if err := addPending(tx, k, r); err != nil {
				return err
			}
		}
		if closing {
			if err := c.closeActivationHours(tx, closeAt); err != nil {
				return err
			}
		}
		for w, n := range added {
			if n == 0 {
				continue
			}
			// Add, not overwrite: other replicas of a shared state count the same workload.
			stored, err := activationCount(tx, w)
			if err != nil {
				return err
			}
			if err := tx.Put(bucketCounts, w, []byte(strconv.FormatUint(stored+n, 10))); err != nil {
				return err
			}
		}
		return nil
	})
	c.counts.mu.Lock()
	defer c.counts.mu.Unlock()
	if err != nil {
		for w := range snap {
			c.counts.dirty[w] = true
		}
		for k, r := range results {
			for res, n := range r {
				c.counts.results[k] = orNew(c.counts.results[k])
				c.counts.results[k][res] += n
			}
		}
		return err
	}
	for w, n := range snap {
		c.counts.flushed[w] = max(c.counts.flushed[w], n)
	}
	if closing {
		c.counts.closed = hour
	}
	return nil
}

func orNew(r activationCounts) activationCounts {
	if r == nil {
		return activationCounts{}
	}
	return r
}

// Run does the Coordinator's background work until ctx ends: it flushes activation counts
// and their audit results every few seconds, and once more before it returns, closing every
// open hour of the audit log's activation counts; and it makes the shared epoch quote at the
// start of every epoch (see EpochQuote).
func (c *Core) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.refreshEpochQuotes(ctx) })
	t := time.NewTicker(countFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return c.flushCounts(final, true)
		case <-t.C:
			if err := c.flushCounts(ctx, false); err != nil && !errors.Is(err, context.Canceled) {
				c.log.Error("flush activation counts", "error", err.Error())
			}
			if err := c.expirePending(ctx); err != nil && !errors.Is(err, context.Canceled) {
				c.log.Error("withdraw an expired manifest update", "error", err.Error())
			}
		}
	}
}

// ActivationCounts returns how many times each workload has activated.
func (c *Core) ActivationCounts() map[string]uint64 {
	c.counts.mu.Lock()
	defer c.counts.mu.Unlock()
	return maps.Clone(c.counts.total)
}
