package core

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/store"
)

// A Coordinator on a shared state (store.OpenRemote) is one of several replicas: another one
// may change the manifest or the secrets at any time. The deployment (manifest, users, shared
// secrets) is kept in memory, so before a request is served, Refresh reads the newest state
// (one quorum read, shared by the requests that arrive meanwhile) and reads the deployment
// again if what it is made of changed. Everything that must be exact across replicas
// (activation limits, per-instance values, the stored manifest version an activation is judged
// against) is read and written inside store transactions, which the shared state commits by
// compare-and-swap.

// deploymentBuckets are the buckets a deployment is read from.
var deploymentBuckets = []string{bucketManifest, bucketSecrets}

// sharedState tracks what the in-memory deployment was read from.
type sharedState struct {
	fp [sha256.Size]byte // the fingerprint of deploymentBuckets dep was read at
}

// Refresh brings the deployment up to the newest shared state. On an embedded store it does
// nothing. An unreachable shared state is a NOT_READY error (clients retry it).
func (c *Core) Refresh(ctx context.Context) error {
	if !c.db.Shared() {
		return nil
	}
	fp, err := c.db.Refresh(ctx, deploymentBuckets...)
	if err != nil {
		return sharedError(err)
	}
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if fp == c.shared.fp {
		return nil
	}
	// Read the deployment and its fingerprint from states at least as new as fp's.
	dep, err := c.readDeployment(ctx)
	if err != nil {
		return sharedError(err)
	}
	c.mu.Lock()
	changed := c.dep == nil || dep == nil || dep.version != c.dep.version
	c.dep = dep
	c.mu.Unlock()
	c.shared.fp = fp
	if changed && dep != nil {
		c.log.Info("read the deployment changed by another replica", "manifest_version", dep.version)
	}
	return nil
}

// sharedError turns an unavailable shared state into NOT_READY.
func sharedError(err error) error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: api.CodeNotReady, Message: "the Coordinator's shared state (the Kubernetes API) is unavailable; retry"}
	}
	return fmt.Errorf("refresh the shared state: %w", err)
}

// storedCounts adds to local, this replica's activation counts, the counts stored in a shared
// state: activations of limited workloads on other replicas are counted there at once, those
// of unlimited workloads when their replica flushes. On an embedded store it returns local.
func (c *Core) storedCounts(local map[string]uint64) map[string]uint64 {
	if !c.db.Shared() {
		return local
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.db.View(ctx, func(tx *store.Tx) error {
		return tx.ForEach(bucketCounts, func(k string, v []byte) error {
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("state %s/%s is corrupt: %q is not a count", bucketCounts, k, v)
			}
			local[k] = max(local[k], n)
			return nil
		})
	})
	if err != nil {
		c.log.Error("read the stored activation counts for the status", "error", err.Error())
	}
	return local
}
