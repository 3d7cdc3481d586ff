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

// DefaultSweepGrace is how old a shard no manifest names must be before Sweep deletes it.
//
// A commit creates its shards before it writes the manifest that names them, so a young
// unnamed shard may belong to a commit still in flight. The API server ends every
// non-long-running request within a minute by default; an hour leaves a wide margin, and a
// stray shard only costs space until then.
const DefaultSweepGrace = time.Hour

// maxSweepPage bounds one List page; a sweep reads pages until the list ends.
const maxSweepPage = 500

// Sweep deletes the shard Secrets of this state that the current manifest does not name and
// that were created more than grace ago: shards left behind by a replica that crashed between
// writing a shard and writing the manifest, by a commit whose outcome was unknown, or by a
// background deletion that failed. It returns how many it deleted.
//
// Ages are the API server's creation times against this replica's clock; the grace absorbs
// any ordinary skew between them. It needs list on Secrets besides the verbs the state itself
// needs. Without a manifest
// nothing is deleted: a state being created may own every shard there is.
func (r *Remote) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	if grace < time.Minute {
		return 0, fmt.Errorf("kubestate: sweep grace is %v, expected at least a minute (a commit in flight may still name a younger shard)", grace)
	}
	// The manifest is read after the list: a shard listed and named by an older manifest is
	// either named by this one too or was released by a commit, and then deleting it is right.
	var strays []string
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
		cutoff := r.now().Add(-grace)
		for _, s := range list.Items {
			if s.CreationTimestamp.Time.Before(cutoff) {
				strays = append(strays, s.Name)
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	if len(strays) == 0 {
		return 0, nil
	}
	r.reads.Add(1)
	m, err := r.secrets().Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, r.apiError("reading", r.name, err)
	}
	doc, err := parseLayout(m.Data[dataLayout])
	if err != nil {
		return 0, fmt.Errorf("kubestate: sweep: Secret %s/%s: %w", r.ns, r.name, err)
	}
	deleted := 0
	for _, name := range strays {
		if named(doc.Shards, name) {
			continue
		}
		r.writes.Add(1)
		err := r.secrets().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return deleted, r.apiError("deleting the stray shard", name, err)
		}
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
