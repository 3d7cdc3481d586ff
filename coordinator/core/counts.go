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
type counts struct {
	mu    sync.Mutex // guards total and dirty
	total map[string]uint64
	dirty map[string]bool
}

func (c *counts) load(ctx context.Context, db *store.DB) error {
	c.total, c.dirty = map[string]uint64{}, map[string]bool{}
	return db.View(ctx, func(tx *store.Tx) error {
		return tx.ForEach(bucketCounts, func(k string, v []byte) error {
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("state %s/%s is corrupt: %q is not a count", bucketCounts, k, v)
			}
			c.total[k] = n
			return nil
		})
	})
}

// add counts one activation of an unlimited workload and returns the new total.
func (c *counts) add(workload string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total[workload]++
	c.dirty[workload] = true
	return c.total[workload]
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
	c.total[workload] = max(c.total[workload], n)
}

func (c *counts) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.dirty))
	for w := range c.dirty {
		out[w] = c.total[w]
	}
	clear(c.dirty)
	return out
}

// flush writes the counts that changed since the last flush. Stored counts never go down.
func (c *Core) flushCounts(ctx context.Context) error {
	snap := c.counts.snapshot()
	if len(snap) == 0 {
		return nil
	}
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		for w, n := range snap {
			stored, err := activationCount(tx, w)
			if err != nil {
				return err
			}
			if n > stored {
				if err := tx.Put(bucketCounts, w, []byte(strconv.FormatUint(n, 10))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		c.counts.mu.Lock()
		for w := range snap {
			c.counts.dirty[w] = true
		}
		c.counts.mu.Unlock()
	}
	return err
}

// Run does the Coordinator's background work until ctx ends: it flushes activation counts
// every few seconds, and once more before it returns.
func (c *Core) Run(ctx context.Context) error {
	t := time.NewTicker(countFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return c.flushCounts(final)
		case <-t.C:
			if err := c.flushCounts(ctx); err != nil && !errors.Is(err, context.Canceled) {
				c.log.Error("flush activation counts", "error", err.Error())
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
