package kubestate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// DefaultSweepGrace is how long a shard must have been seen unnamed, by this replica, before
// Sweep deletes it.
//
// A commit creates its shards before it writes the manifest that names them, so an unnamed
// shard may belong to a commit still in flight. A commit gives up within seconds (the store
// bounds it) and the API server ends every write within a minute; an hour leaves a wide margin,
// and a stray shard only costs space until then.
const DefaultSweepGrace = time.Hour

// maxSweepPage bounds one List page; a sweep reads pages until the list ends.
const maxSweepPage = 500

// Sweep deletes the shard Secrets of this state that the current manifest does not name and
// that an earlier sweep of this replica, at least grace before, already found unnamed: shards
// left behind by a replica that crashed between writing a shard and writing the manifest, by a
// commit whose outcome was unknown, or by a background deletion that failed. It returns how
// many it deleted.
//
// Ages are measured on this replica's monotonic clock between its own sweeps, never as the API
// server's creation time against this replica's wall clock: a node whose clock runs an hour
// fast must not delete the fresh shards of a commit in flight on another replica (the manifest
// would then name a shard that is gone, and the state could not be read). A replica that
// restarts starts counting again.
//
// It needs list on Secrets besides the verbs the state itself needs. Without a manifest
// nothing is deleted: a state being created may own every shard there is.
func (r *Remote) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	if grace < time.Minute {
		return 0, fmt.Errorf("kubestate: sweep grace is %v, expected at least a minute (a commit in flight may still name a younger shard)", grace)
	}
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	// The manifest is read after the list: a shard listed and named by an older manifest is
	// either named by this one too or was released by a commit, and then deleting it is right.
	var listed []string
	var cont string
	for {
		r.reads.Add(1)
		list, err := r.secrets().List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(r.labels("shard")).String(),
			Limit:         maxSweepPage,
			Continue:      cont,
		})
		if err != nil {
			return 0, r.apiError("listing the shards of", r.name, err)
		}
		for _, s := range list.Items {
			listed = append(listed, s.Name)
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	r.reads.Add(1)
	m, err := r.secrets().Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		clear(r.unnamedSince)
		return 0, nil
	}
	if err != nil {
		return 0, r.apiError("reading", r.name, err)
	}
	doc, err := parseLayout(m.Data[dataLayout])
	if err != nil {
		return 0, fmt.Errorf("kubestate: sweep: Secret %s/%s: %w", r.ns, r.name, err)
	}
	now := r.now()
	since := make(map[string]time.Time, len(listed))
	var strays []string
	for _, name := range listed {
		if named(doc.Shards, name) {
			continue
		}
		first, ok := r.unnamedSince[name]
		if !ok {
			first = now
		}
		since[name] = first
		if now.Sub(first) >= grace {
			strays = append(strays, name)
		}
	}
	r.unnamedSince = since // forgets shards named again or gone
	deleted := 0
	for _, name := range strays {
		r.writes.Add(1)
		err := r.secrets().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return deleted, r.apiError("deleting the stray shard", name, err)
		}
		delete(r.unnamedSince, name)
		if err == nil {
			deleted++
		}
	}
	return deleted, nil
}

// RunSweeper sweeps every interval (with up to a quarter of it added at random, so that
// replicas do not sweep in step) until ctx ends, logging what it deleted and what failed.
func (r *Remote) RunSweeper(ctx context.Context, interval, grace time.Duration) {
	for {
		wait := interval + rand.N(interval/4+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := r.Sweep(ctx, grace)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("kubestate: sweeping stray shard Secrets failed", "namespace", r.ns, "state", r.name, "error", err.Error())
		case n > 0:
			r.log.Info("kubestate: deleted stray shard Secrets", "namespace", r.ns, "state", r.name, "count", n)
		}
	}
}
