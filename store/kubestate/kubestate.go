// Package kubestate keeps a Coordinator's shared state in Kubernetes Secrets: a
// [store.Remote] for [store.OpenRemote].
//
// The state is one manifest Secret, named by the configuration, and shard Secrets. The manifest
// holds the store's sealed header ("header"), the layout ("layout": the shards' names and
// SHA-256 digests, as JSON) and, while the state fits in one shard, that shard itself
// ("shard"). Every entry belongs to shard FNV-1a(bucket ‖ 0 ‖ key) mod n; n doubles whenever a
// shard would pass Options.ShardSize (512 KiB by default, well under the API's ~1.5 MiB object
// limit even base64-encoded), so a commit rewrites only the shards it changed. A shard Secret
// is written once, under a fresh random name, and never changed; the manifest is replaced by
// an update carrying the resourceVersion it was read at, so every change is a compare-and-swap:
// two replicas committing at once cannot both succeed, and the loser's shards are deleted.
// Shards the new manifest no longer names are deleted after it is written.
//
// Entries are stored as the store sealed them; the package never sees a plaintext value.
// A shard's digest is checked when it is read, and the store checks the whole state against
// its sealed header.
package kubestate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloister-dev/cloister/store"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

const (
	// DefaultShardSize bounds a shard's encoded size when Options.ShardSize is zero.
	DefaultShardSize = 512 << 10
	// maxShards bounds the number of shards: 4,096 × 512 KiB = 2 GiB, etcd's own default limit.
	maxShards = 4096
	// maxShardSize bounds ShardSize, and the shards a replica reads (whatever its own ShardSize).
	maxShardSize = 768 << 10
	// maxNameLen leaves room for the shard suffix in a Secret's name (253 at most).
	maxNameLen = 200

	dataHeader = "header"
	dataLayout = "layout"
	dataShard  = "shard"

	labelManagedBy = "app.kubernetes.io/managed-by"
	labelState     = "cloister.dev/state"
	labelRole      = "cloister.dev/state-role"
	// maxLoadAttempts bounds how often Load starts over when a shard it needs was deleted by
	// a newer commit while it read.
	maxLoadAttempts = 10
)

// Options configures a Remote.
type Options struct {
	// Namespace and Name name the manifest Secret; shards are named Name-<random>. Required.
	Namespace, Name string
	// ShardSize bounds a shard's encoded size in bytes; zero means DefaultShardSize. At least
	// 1 KiB, at most 768 KiB.
	ShardSize int
	// Logger receives warnings about shards that could not be deleted; nil means none.
	Logger *slog.Logger
}

// Remote is a store.Remote on the Kubernetes API. It is safe for concurrent use.
type Remote struct {
	c         kubernetes.Interface
	ns, name  string
	shardSize int
	log       *slog.Logger
	reads     atomic.Uint64
	writes    atomic.Uint64
	// now is the sweeper's clock (monotonic between its readings); tests move it.
	now func() time.Time
	// sweepMu guards unnamedSince: when this replica first saw each unnamed shard.
	sweepMu      sync.Mutex
	unnamedSince map[string]time.Time
}

var _ store.Remote = (*Remote)(nil)

// New returns a Remote keeping the state named by o through c.
func New(c kubernetes.Interface, o Options) (*Remote, error) {
	if c == nil {
		return nil, errors.New("kubestate: a Kubernetes client is required")
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("kubestate: namespace %q is not a valid namespace name: %v", o.Namespace, errs)
	}
	if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 || len(o.Name) > maxNameLen {
		return nil, fmt.Errorf("kubestate: state name %q must be a DNS subdomain of at most %d characters (%v)", o.Name, maxNameLen, errs)
	}
	switch {
	case o.ShardSize == 0:
		o.ShardSize = DefaultShardSize
	case o.ShardSize < 1<<10 || o.ShardSize > maxShardSize:
		return nil, fmt.Errorf("kubestate: ShardSize is %d, expected 0 (default) or 1 KiB to 768 KiB", o.ShardSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Remote{c: c, ns: o.Namespace, name: o.Name, shardSize: o.ShardSize, log: o.Logger, now: time.Now}, nil
}

// APICalls returns how many reads and writes the Remote has sent to the API server.
func (r *Remote) APICalls() (reads, writes uint64) { return r.reads.Load(), r.writes.Load() }

// shardRef names one shard: its Secret ("" when held in the manifest) and its digest.
type shardRef struct {
	Name   string `json:"name,omitempty"`
	SHA256 string `json:"sha256"`
}

type layoutDoc struct {
	Shards []shardRef `json:"shards"`
}

// held is a state's Layout: its shards and their decoded entries.
type held struct {
	shards []shardRef
	parts  []buckets
}

type buckets = map[string]map[string][]byte

func (r *Remote) secrets() secretsClient { return r.c.CoreV1().Secrets(r.ns) }

type secretsClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error)
}

// Load reads the manifest Secret (a quorum read) and the shards that changed since last.
func (r *Remote) Load(ctx context.Context, last *store.RemoteState) (*store.RemoteState, error) {
	for attempt := 1; ; attempt++ {
		st, retry, err := r.load(ctx, last)
		if !retry || attempt == maxLoadAttempts {
			return st, err
		}
	}
}

func (r *Remote) load(ctx context.Context, last *store.RemoteState) (_ *store.RemoteState, retry bool, _ error) {
	r.reads.Add(1)
	m, err := r.secrets().Get(ctx, r.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, r.apiError("reading", r.name, err)
	}
	if last != nil && m.ResourceVersion == last.Rev {
		return last, false, nil
	}
	doc, err := parseLayout(m.Data[dataLayout])
	if err != nil {
		return nil, false, fmt.Errorf("kubestate: Secret %s/%s: %w", r.ns, r.name, err)
	}
	var prev *held
	if last != nil {
		prev, _ = last.Layout.(*held)
	}
	h := &held{shards: doc.Shards, parts: make([]buckets, len(doc.Shards))}
	for i, ref := range doc.Shards {
		if prev != nil && i < len(prev.shards) && prev.shards[i] == ref && ref.Name != "" {
			h.parts[i] = prev.parts[i]
			continue
		}
		raw, name := m.Data[dataShard], r.name
		if ref.Name != "" {
			if len(doc.Shards) == 1 {
				return nil, false, fmt.Errorf("%w: kubestate: Secret %s/%s: a single shard must be held in the manifest", store.ErrCorrupt, r.ns, r.name)
			}
			name = ref.Name
			r.reads.Add(1)
			s, err := r.secrets().Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				// Deleted by a commit newer than m: read the newer manifest.
				return nil, true, fmt.Errorf("%w: kubestate: shard Secret %s/%s named by %s is missing", store.ErrCorrupt, r.ns, ref.Name, r.name)
			case err != nil:
				return nil, false, r.apiError("reading", ref.Name, err)
			}
			raw = s.Data[dataShard]
		}
		sum := sha256.Sum256(raw)
		if hex.EncodeToString(sum[:]) != ref.SHA256 {
			return nil, false, fmt.Errorf("%w: kubestate: shard %d (Secret %s/%s) has digest %x, but the manifest names %s", store.ErrCorrupt, i, r.ns, name, sum[:8], ref.SHA256)
		}
		part, err := decodeShard(raw, maxShardSize)
		if err != nil {
			return nil, false, fmt.Errorf("kubestate: shard %d (Secret %s/%s): %w", i, r.ns, name, err)
		}
		h.parts[i] = part
	}
	return &store.RemoteState{Header: m.Data[dataHeader], Buckets: merge(h.parts), Rev: m.ResourceVersion, Layout: h}, false, nil
}

// parseLayout decodes a manifest's layout: a power of two of shards, from 1 to maxShards.
func parseLayout(raw []byte) (layoutDoc, error) {
	var doc layoutDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return doc, fmt.Errorf("%w: its %q is not a shard layout: %v", store.ErrCorrupt, dataLayout, err)
	}
	if n := len(doc.Shards); n == 0 || n > maxShards || n&(n-1) != 0 {
		return doc, fmt.Errorf("%w: it names %d shards, expected a power of two from 1 to %d", store.ErrCorrupt, n, maxShards)
	}
	return doc, nil
}

func merge(parts []buckets) buckets {
	if len(parts) == 1 {
		return parts[0]
	}
	out := buckets{}
	for _, p := range parts {
		for b, keys := range p {
			ob := out[b]
			if ob == nil {
				ob = make(map[string][]byte, len(keys))
				out[b] = ob
			}
			for k, v := range keys {
				ob[k] = v
			}
		}
	}
	return out
}

// shardOf returns the shard of an entry among n (a power of two).
func shardOf(bucket, key string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int(h.Sum64() & uint64(n-1))
}

// split divides bs into n shards and encodes them.
func split(bs buckets, n int) ([][]byte, []buckets) {
	parts := make([]buckets, n)
	for i := range parts {
		parts[i] = buckets{}
	}
	for b, keys := range bs {
		for k, v := range keys {
			p := parts[shardOf(b, k, n)]
			if p[b] == nil {
				p[b] = map[string][]byte{}
			}
			p[b][k] = v
		}
	}
	enc := make([][]byte, n)
	for i, p := range parts {
		enc[i] = encodeShard(p)
	}
	return enc, parts
}

// Commit writes next's changed shards as new Secrets and replaces the manifest Secret if it is
// still at base's resourceVersion.
func (r *Remote) Commit(ctx context.Context, base, next *store.RemoteState) (*store.RemoteState, error) {
	var prev *held
	if base != nil {
		prev, _ = base.Layout.(*held)
		if prev == nil {
			return nil, errors.New("kubestate: the base state was not loaded by this Remote")
		}
	}
	n := 1
	if prev != nil {
		n = len(prev.shards)
	}
	var enc [][]byte
	var parts []buckets
	for {
		enc, parts = split(next.Buckets, n)
		over := false
		for _, e := range enc {
			over = over || len(e) > r.shardSize
		}
		if !over {
			break
		}
		if n *= 2; n > maxShards {
			return nil, fmt.Errorf("kubestate: the state needs more than %d shards of %d bytes; it is too large for the Kubernetes API", maxShards, r.shardSize)
		}
	}
	refs := make([]shardRef, n)
	var created []string
	for i, e := range enc {
		sum := sha256.Sum256(e)
		refs[i].SHA256 = hex.EncodeToString(sum[:])
		if n == 1 {
			continue
		}
		if prev != nil && len(prev.shards) == n && prev.shards[i].SHA256 == refs[i].SHA256 && prev.shards[i].Name != "" {
			refs[i].Name = prev.shards[i].Name
			continue
		}
		name, err := r.createShard(ctx, e)
		if err != nil {
			r.cleanup(created)
			return nil, err
		}
		created = append(created, name)
		refs[i].Name = name
	}
	layout, err := json.Marshal(layoutDoc{Shards: refs})
	if err != nil {
		return nil, fmt.Errorf("kubestate: encoding the layout: %w", err)
	}
	m := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: r.name, Namespace: r.ns, Labels: r.labels("manifest")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{dataHeader: next.Header, dataLayout: layout},
	}
	if n == 1 {
		m.Data[dataShard] = enc[0]
	}
	var stored *corev1.Secret
	r.writes.Add(1)
	if base == nil {
		stored, err = r.secrets().Create(ctx, m, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			r.cleanup(created)
			return nil, fmt.Errorf("%w: kubestate: Secret %s/%s was created by another replica", store.ErrConflict, r.ns, r.name)
		}
	} else {
		m.ResourceVersion = base.Rev
		stored, err = r.secrets().Update(ctx, m, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			r.cleanup(created)
			return nil, fmt.Errorf("%w: kubestate: Secret %s/%s changed since resourceVersion %s", store.ErrConflict, r.ns, r.name, base.Rev)
		}
	}
	if err != nil {
		// The write may have happened or not: keep the new shards (a manifest may name them).
		return nil, r.apiError("writing", r.name, err)
	}
	if prev != nil {
		var old []string
		for _, s := range prev.shards {
			if s.Name != "" && !named(refs, s.Name) {
				old = append(old, s.Name)
			}
		}
		r.cleanup(old)
	}
	return &store.RemoteState{Header: next.Header, Buckets: next.Buckets, Rev: stored.ResourceVersion, Layout: &held{shards: refs, parts: parts}}, nil
}

func named(refs []shardRef, name string) bool {
	for _, r := range refs {
		if r.Name == name {
			return true
		}
	}
	return false
}

func (r *Remote) labels(role string) map[string]string {
	return map[string]string{labelManagedBy: "cloister", labelState: r.name, labelRole: role}
}

// createShard writes a shard Secret under a fresh name.
func (r *Remote) createShard(ctx context.Context, enc []byte) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	name := r.name + "-" + hex.EncodeToString(b[:])
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.ns, Labels: r.labels("shard")},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  new(true),
		Data:       map[string][]byte{dataShard: enc},
	}
	r.writes.Add(1)
	if _, err := r.secrets().Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", r.apiError("creating", name, err)
	}
	return name, nil
}

// cleanup deletes shard Secrets no manifest names, in the background. A failure leaves a
// shard behind, which costs space but no correctness.
func (r *Remote) cleanup(names []string) {
	if len(names) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range names {
			r.writes.Add(1)
			if err := r.secrets().Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				r.log.Warn("kubestate: could not delete an unused shard Secret", "namespace", r.ns, "name", n, "error", err.Error())
			}
		}
	}()
}

// apiError wraps an API error; errors that a retry may cure match store.ErrUnavailable.
func (r *Remote) apiError(op, name string, err error) error {
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return fmt.Errorf("kubestate: %s Secret %s/%s: %w (the Coordinator's service account needs get, list, create, update and delete on Secrets in %s)", op, r.ns, name, err, r.ns)
	case apierrors.IsInvalid(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("kubestate: %s Secret %s/%s: %w", op, r.ns, name, err)
	}
	return fmt.Errorf("%w: kubestate: %s Secret %s/%s: %w", store.ErrUnavailable, op, r.ns, name, err)
}
