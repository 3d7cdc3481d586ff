package store

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/seal"
)

// # Shared state (a Remote)
//
// A store opened with [OpenRemote] keeps its state not in state.db but in a [Remote], such as
// the Kubernetes API (package store/kubestate), shared by several Coordinator replicas. The
// values are the same sealed values as in state.db (AES-256-GCM under the data key, bucket and
// key as additional data); the Remote only ever sees them sealed. Beside them the Remote keeps
// a header sealed under the data key: the state version (see version.go), the SHA-256 of every
// entry (so that no entry can be dropped, added, or brought back from an older state without
// the header failing to match), and the data key's ID.
//
// The directory given to OpenRemote holds only data-key.json (the data key sealed by this
// replica's sealer) and VersionFile (the newest state version this replica has seen). Every
// replica opening the same Remote must hold the same data key; until replicas share it by
// mutual attestation, each one's data-key.json is a copy of the first one's.
//
// A write transaction reads the newest state, runs its function on a copy and replaces the
// state with a compare-and-swap ([Remote.Commit]); if another replica committed first, the
// function runs again on the new state. So Update's function, like Batch's, may run more than
// once. A read transaction first asks the Remote for its newest state, so that a change
// committed on any replica is seen by every transaction that starts after it. Every state
// read is checked against the newest version this replica has seen: an older one is refused
// with ErrRolledBack.

// Remote holds a shared state: a set of sealed entries and a sealed header, replaced whole by
// compare-and-swap. Its methods are called concurrently.
type Remote interface {
	// Load returns the newest committed state, or nil and no error if there is none yet.
	// last is the state Load or Commit returned before, or nil; if nothing changed since, Load
	// may return last itself.
	Load(ctx context.Context, last *RemoteState) (*RemoteState, error)
	// Commit replaces base, which must still be the newest state, with next (whose Header and
	// Buckets are set) and returns next as stored (with Rev and Layout set). base nil creates
	// the first state. If base is no longer the newest, or a state exists already, the error
	// matches ErrConflict and nothing changed.
	Commit(ctx context.Context, base, next *RemoteState) (*RemoteState, error)
}

// RemoteState is one committed state of a Remote. It is never modified once built.
type RemoteState struct {
	// Header is sealed by the store; the Remote keeps it as it is.
	Header []byte
	// Buckets maps bucket names to keys to sealed values.
	Buckets map[string]map[string][]byte
	// Rev identifies this state to its Remote (a resourceVersion).
	Rev string
	// Layout is the Remote's own record of how it holds this state.
	Layout any
}

var (
	// ErrConflict is matched by a Remote's Commit error when the state changed since it was read.
	ErrConflict = errors.New("store: the shared state changed since it was read")
	// ErrUnavailable is matched by errors of a shared state's Remote that did not answer (the
	// Kubernetes API or its etcd is down, or the network): nothing was changed that was not
	// acknowledged, and the request can be retried.
	ErrUnavailable = errors.New("store: the shared state is unavailable; retry")
)

const (
	remoteHeaderBucket = "\x00shared-state"
	remoteHeaderKey    = "header"
	remoteHeaderLen    = versionRecLen + sha256.Size + keyIDSize
	remoteDigestDomain = "cloister-shared-state-v1\x00"
	// remoteOpTimeout bounds a load, and a write with its retries. An API server whose etcd
	// is gone holds requests until its own timeout (a minute); the Coordinator answers its
	// clients well before its HTTP write timeout (30 s), since an answer written after that is
	// cut off in the middle of a TLS record.
	remoteOpTimeout = 15 * time.Second
	// maxCommitAttempts bounds how often a write transaction runs again after conflicts.
	maxCommitAttempts = 1000
)

// remoteDB is the shared-state part of a DB opened with OpenRemote.
type remoteDB struct {
	r      Remote
	keys   KeyShelf // nil: data-key.json only
	keyID  []byte
	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	mu     sync.Mutex   // guards cur and the fingerprint cache
	cur    *RemoteState // the newest state seen
	// fp is Refresh's fingerprint of the buckets fpKey names in fpState.
	fpState *RemoteState
	fpKey   string
	fp      [sha256.Size]byte
	loads   loader
	// unconfirmed is set when the state was opened with no version to check it against.
	unconfirmed string
	// stats
	statsMu sync.Mutex
	stats   RemoteStats
}

// RemoteStats counts a shared-state store's calls to its Remote.
type RemoteStats struct {
	Loads, Commits, Conflicts uint64
}

// RemoteStats returns how many loads, commits and conflicts the store has had; zero for an
// embedded store.
func (db *DB) RemoteStats() RemoteStats {
	if db.remote == nil {
		return RemoteStats{}
	}
	db.remote.statsMu.Lock()
	defer db.remote.statsMu.Unlock()
	return db.remote.stats
}

func (r *remoteDB) count(f func(*RemoteStats)) {
	r.statsMu.Lock()
	f(&r.stats)
	r.statsMu.Unlock()
}

// OpenRemote opens the shared state held by r, with dir (created, mode 0700, if needed) for
// this replica's sealed data key and VersionFile. If r holds no state yet, an empty one is
// created, and so is a data key if dir has none. If r holds a state, dir's data-key.json must
// hold its data key. The state is refused with ErrRolledBack if it is older than the newest
// version recorded in dir, or was deleted after dir saw a version above 0.
func OpenRemote(ctx context.Context, dir string, s seal.Sealer, r Remote, opts Options) (*DB, error) {
	if s == nil || r == nil {
		return nil, errors.New("store: sealer and remote are required")
	}
	return openDir(dir, opts, func(root *os.Root, opts Options) (*DB, error) {
		db, err := openRemoteLocked(ctx, root, s, r, opts, nil)
		if errors.Is(err, errLostCreateRace) {
			// Another replica created the state first: open it as a new replica does.
			db, err = openRemoteLocked(ctx, root, s, r, opts, nil)
		}
		return db, err
	})
}

// openRemoteLocked does OpenRemote's work (given nil) or RecoverRemote's (given the recovered
// key) while the directory lock is held.
func openRemoteLocked(ctx context.Context, root *os.Root, s seal.Sealer, r Remote, opts Options, given []byte) (*DB, error) {
	if _, err := root.Lstat(StateFile); err == nil {
		return nil, fmt.Errorf("store: %s holds an embedded store's %s, but the shared state is kept in the Kubernetes API: use a directory of its own for the shared state's key", root.Name(), StateFile)
	}
	st, err := r.Load(ctx, nil)
	if err != nil {
		return nil, err
	}
	if st == nil && given == nil {
		if st, err = checkNothingShelved(ctx, r, opts.Keys); err != nil {
			return nil, err
		}
	}
	var (
		key      []byte
		peerSeen Version // the newest version a peer had seen (the giver, or those asked)
		// writeKey: the key came from the shelf or a peer and goes to data-key.json, once
		// the state passed every check.
		writeKey bool
		newKey   bool // the key was made here, for a state this replica is to create
		asked    bool // the peers were asked (they gave the key, or were asked for their version)
		askErr   error
	)
	if given != nil {
		if st == nil {
			return nil, errors.New("store: nothing to recover: the shared state does not exist")
		}
		if _, err := stateKeyCheck(st)(given); err != nil {
			return nil, fmt.Errorf("store: the recovered data key does not open the shared state: %w", err)
		}
		key = given
	} else {
		key, err = readLocalKey(root, s)
		switch {
		case err == nil && st != nil:
			// A key file of another deployment's state (a reused directory) is refused below,
			// by the header.
		case (errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrUnseal)) && st != nil:
			// A new CPU, or a new directory: this replica's copy is on the shelf, or a peer
			// gives the key.
			var why error
			if errors.Is(err, ErrUnseal) {
				why = err
			}
			if key, peerSeen, asked, err = obtainKey(ctx, s, st, opts, why); err != nil {
				return nil, err
			}
			writeKey = true
		case errors.Is(err, fs.ErrNotExist):
			// A new state. The key is written first, so that a crash cannot leave a state
			// whose key is nowhere; if another replica creates the state first, it is removed
			// again (below), and the winner's key taken.
			if key, err = createDataKey(root, s); err != nil {
				return nil, err
			}
			newKey = true
		case err != nil:
			return nil, err
		}
	}
	aead, err := newAEAD(key)
	if err != nil {
		clear(key)
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	db := &DB{
		aead:         aead,
		dataKey:      key,
		sealer:       s,
		maxValueSize: opts.MaxValueSize,
		log:          opts.Logger,
		writer:       make(chan struct{}, 1),
		closeWait:    defaultCloseWait,
		root:         root,
		remote:       &remoteDB{r: r, keys: opts.Keys, keyID: keyIDRecord(key)[:keyIDSize], ctx: rctx, cancel: cancel},
	}
	fail := func(err error) (*DB, error) {
		cancel()
		db.anchor.close()
		clear(key)
		return nil, err
	}
	created := st == nil
	if created {
		if err := checkNoState(root, aead); err != nil {
			return fail(fmt.Errorf("store: the shared state is missing: %w", err))
		}
		empty := &RemoteState{Buckets: map[string]map[string][]byte{}}
		empty.Header = db.sealHeader(Version{}, empty.Buckets)
		st, err = r.Commit(ctx, nil, empty)
		if errors.Is(err, ErrConflict) {
			// Another replica created the state: this replica's new key opens nothing and
			// must not stay, or every restart on this directory would be refused.
			if newKey {
				if rerr := root.Remove(KeyFile); rerr != nil {
					return fail(fmt.Errorf("store: another replica created the shared state first, and this replica's unused %s could not be removed: %w", KeyFile, rerr))
				}
			}
			return fail(errLostCreateRace)
		}
		if err != nil {
			return fail(err)
		}
	}
	v, err := db.openHeader(st)
	if err != nil {
		return fail(err)
	}
	// Nothing is written before the state's freshness is known: a refused state must stay
	// refused after a restart on the same directory.
	anchor, err := readAnchor(root, aead)
	hasAnchor := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !asked && !created && given == nil && opts.FetchKey != nil {
			// No record of what this replica saw (an empty directory): only the peers can
			// tell whether the state was replayed.
			peerSeen, askErr = askFreshness(ctx, opts, st)
			asked = askErr == nil
			if errors.Is(askErr, ErrUnavailable) {
				// The peers could not be asked at all (the API, the collateral service): a
				// restart asks again, rather than start unchecked.
				return fail(fmt.Errorf("store: asking the peers for the newest state version: %w", askErr))
			}
		}
		if !asked && !created && given == nil && !writeKey && v.N > 0 {
			// This directory's own data-key.json opened the state, but the record of the
			// newest version seen beside it is gone: that happens only if it was deleted.
			// Without a peer to confirm the version, a replayed state could not be told apart.
			return fail(&rolledBackError{msg: fmt.Sprintf("store: %s is missing beside this directory's %s, and no peer confirmed the newest state version (the state read is version %d): "+
				"refusing to serve a state that may have been put back. Start this replica while a peer runs, or, if no replica holds a newer state, remove %s too so that the key is taken from the key shelf",
				VersionFile, KeyFile, v.N, KeyFile)})
		}
	case err != nil:
		return fail(err)
	}
	seen := anchor
	if peerSeen.N > seen.N {
		seen = peerSeen
	}
	if peerSeen.N > v.N {
		// A commit may have landed while the peer was asked: read the state again before
		// calling it replayed.
		if st, v, err = db.reload(ctx); err != nil {
			return fail(err)
		}
	}
	newest := seen
	if v.N > seen.N || (!hasAnchor && peerSeen.N == 0) {
		newest = v
	}
	switch {
	case !hasAnchor:
		err = db.createAnchor(newest)
	case newest != anchor:
		err = writeAnchorOnce(root, aead, newest)
	}
	if err != nil {
		return fail(err)
	}
	if err := checkNewer(v, seen); err != nil {
		return fail(err)
	}
	f, err := root.OpenFile(VersionFile, os.O_RDWR, 0)
	if err != nil {
		return fail(fmt.Errorf("store: opening %s: %w", VersionFile, err))
	}
	db.anchor = versionAnchor{f: f}
	db.version, db.anchored = v, v
	if writeKey {
		if err := writeDataKey(root, s, key); err != nil {
			return fail(err)
		}
	}
	if !hasAnchor && !created && given == nil && !asked {
		db.remote.unconfirmed = unconfirmedFreshness
		why := "no peer to ask is configured"
		if askErr != nil {
			why = askErr.Error()
		}
		opts.Logger.Warn("store: "+unconfirmedFreshness, "state_version", v.N, "why", why)
	}
	db.remote.cur = st
	if given == nil {
		db.shelveKey(ctx)
	}
	opts.Logger.Info("store: opened the shared state", "dir", root.Name(), "sealer", s.Kind(), "state_version", v.N)
	return db, nil
}

// errLostCreateRace: another replica created the shared state while this one tried to; nothing
// was written, and OpenRemote opens the winner's state instead.
var errLostCreateRace = errors.New("store: another replica created the shared state first")

// unconfirmedFreshness is what a replica says when it started on a shared state with no
// record of its own of the newest version and no peer told it one.
const unconfirmedFreshness = "no peer confirmed the state's freshness: this replica has no record of the newest state version (an empty directory) and no peer answered, so a replayed state cannot be detected at this start"

// FreshnessWarning returns a warning for the status when the shared state was opened without
// any check against replay (see docs/ha.md), or "".
func (db *DB) FreshnessWarning() string {
	if db.remote == nil {
		return ""
	}
	return db.remote.unconfirmed
}

// reload reads the state again and authenticates it.
func (db *DB) reload(ctx context.Context) (*RemoteState, Version, error) {
	st, err := db.remote.r.Load(ctx, nil)
	if err != nil {
		return nil, Version{}, err
	}
	if st == nil {
		return nil, Version{}, &rolledBackError{msg: "store: the shared state is gone (its manifest object was deleted) while this replica opened it; restore it"}
	}
	v, err := db.openHeader(st)
	return st, v, err
}

// writeAnchorOnce records v in the existing VersionFile.
func writeAnchorOnce(root *os.Root, aead cipher.AEAD, v Version) error {
	f, err := root.OpenFile(VersionFile, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", VersionFile, err)
	}
	a := versionAnchor{f: f}
	err = a.write(aead, v)
	if cerr := a.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: recording state version %d in %s: %w", v.N, VersionFile, err)
	}
	return nil
}

// checkNewer refuses a state at version v if this replica has seen a newer one, or another
// state of the same version.
func checkNewer(v, seen Version) error {
	switch {
	case v.N < seen.N:
		return &rolledBackError{msg: fmt.Sprintf("store: the shared state is at version %d, but this replica has seen version %d: "+
			"an older copy of the state was put back (a replayed Secret), which would undo later changes (activation counts, manifest updates, removed users); refusing to serve from it. "+
			"Put back the newest state", v.N, seen.N)}
	case v.N == seen.N && v.Hash != seen.Hash:
		return &rolledBackError{msg: fmt.Sprintf("store: the shared state is at version %d with hash %x, but the state this replica saw at version %d has hash %x: "+
			"it is not the state the replicas wrote (a fork or a replayed Secret); refusing to serve from it", v.N, v.Hash[:8], seen.N, seen.Hash[:8])}
	}
	return nil
}

// stateDigest hashes every entry of buckets in order.
func stateDigest(buckets map[string]map[string][]byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(remoteDigestDomain))
	var n [4]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, b := range slices.Sorted(mapKeys(buckets)) {
		keys := buckets[b]
		if len(keys) == 0 {
			continue
		}
		field([]byte(b))
		binary.BigEndian.PutUint32(n[:], uint32(len(keys)))
		h.Write(n[:])
		for _, k := range slices.Sorted(mapKeys(keys)) {
			field([]byte(k))
			field(keys[k])
		}
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sealHeader seals the header of a state at version v holding buckets.
func (db *DB) sealHeader(v Version, buckets map[string]map[string][]byte) []byte {
	d := stateDigest(buckets)
	rec := append(v.encode(), d[:]...)
	rec = append(rec, db.remote.keyID...)
	return sealValue(db.aead, remoteHeaderBucket, remoteHeaderKey, rec)
}

// openHeader authenticates st's header and entries and returns its version.
func (db *DB) openHeader(st *RemoteState) (Version, error) {
	return openHeaderWith(db.aead, db.remote.keyID, st)
}

// remoteLoad returns the newest state, checked against the newest version seen, and records
// its version as seen.
func (db *DB) remoteLoad(ctx context.Context) (*RemoteState, error) {
	r := db.remote
	r.mu.Lock()
	last := r.cur
	r.mu.Unlock()
	// The newest version seen before the read: the read must return it or a newer one. A
	// commit of this replica that ends while the read runs may be newer than what it returns.
	before := db.Version()
	r.count(func(s *RemoteStats) { s.Loads++ })
	st, err := r.r.Load(ctx, last)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, &rolledBackError{msg: "store: the shared state is gone (its manifest object was deleted); refusing to start over from an empty state: restore it"}
	}
	if st == last {
		return st, nil
	}
	v, err := db.openHeader(st)
	if err != nil {
		return nil, err
	}
	if err := checkNewer(v, before); err != nil {
		db.log.Error("store: refused a shared state older than one seen", "version", v.N, "seen", before.N)
		return nil, err
	}
	return db.seen(st, v)
}

// seen records st, at version v, as the newest state unless a newer one was seen meanwhile,
// and returns the newest state seen. Another state of the newest version seen is refused.
func (db *DB) seen(st *RemoteState, v Version) (*RemoteState, error) {
	r := db.remote
	db.versionMu.Lock()
	defer db.versionMu.Unlock()
	if v.N == db.version.N && v.Hash != db.version.Hash {
		return nil, checkNewer(v, db.version)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.N > db.version.N || r.cur == nil {
		db.version = v
		r.cur = st
	}
	return r.cur, nil
}

// remoteView is View on a shared state.
func (db *DB) remoteView(ctx context.Context, fn func(*Tx) error) error {
	st, err := db.loadFresh(ctx)
	if err != nil {
		return err
	}
	if err := db.syncVersion(); err != nil {
		return err
	}
	return (&Tx{db: db, rtx: &remoteTx{base: st.Buckets}}).run(fn)
}

// remoteUpdate is update on a shared state: fn runs on the newest state known and the result
// is committed by compare-and-swap; after a conflict fn runs again on a fresh state. The caller
// holds db.writer.
func (db *DB) remoteUpdate(fn func(*Tx) error) error {
	r := db.remote
	ctx, cancel := context.WithTimeout(r.ctx, remoteOpTimeout)
	defer cancel()
	r.mu.Lock()
	base := r.cur
	r.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if base == nil {
			var err error
			if base, err = db.remoteLoad(ctx); err != nil {
				return err
			}
		}
		tx := &Tx{db: db, writable: true, rtx: &remoteTx{base: base.Buckets}}
		if err := tx.run(fn); err != nil {
			return err
		}
		if tx.writes == nil {
			return nil
		}
		db.versionMu.Lock()
		prev := db.version
		db.versionMu.Unlock()
		baseV, err := db.openHeaderVersion(base)
		if err != nil {
			return err
		}
		if baseV.N < prev.N { // our cached state is behind: a conflict is certain
			base = nil
			continue
		}
		v := baseV.next(tx.writes.Sum(nil))
		next := &RemoteState{Buckets: tx.rtx.merged()}
		next.Header = db.sealHeader(v, next.Buckets)
		r.count(func(s *RemoteStats) { s.Commits++ })
		stored, err := r.r.Commit(ctx, base, next)
		switch {
		case err == nil:
			_, err := db.seen(stored, v)
			return err
		case errors.Is(err, ErrConflict) && attempt < maxCommitAttempts:
			r.count(func(s *RemoteStats) { s.Conflicts++ })
			base = nil
			if err := conflictPause(ctx, attempt); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// openHeaderVersion returns the version in a state's header, which was authenticated when it
// was loaded or committed.
func (db *DB) openHeaderVersion(st *RemoteState) (Version, error) {
	plain, _, err := openAppend(db.aead, nil, nil, remoteHeaderBucket, remoteHeaderKey, st.Header)
	if err != nil || len(plain) != remoteHeaderLen {
		return Version{}, &corruptError{msg: "store: the shared state's header does not authenticate"}
	}
	return decodeVersion(plain[:versionRecLen])
}

// conflictPause waits a little, at random, before a write that met a conflict runs again, so
// that replicas writing at once do not meet again and again.
func conflictPause(ctx context.Context, attempt int) error {
	if attempt < 3 {
		return ctx.Err()
	}
	limit := int64(time.Millisecond) << min(attempt-3, 6)
	n, err := rand.Int(rand.Reader, big.NewInt(limit))
	if err != nil {
		return err
	}
	t := time.NewTimer(time.Duration(n.Int64()))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// remoteTx is the state of a transaction on a shared state: the state it started from and its
// changes (a nil value is a deletion).
type remoteTx struct {
	base   map[string]map[string][]byte
	writes map[string]map[string][]byte
}

func (r *remoteTx) get(bucket, key string) ([]byte, bool) {
	if w, ok := r.writes[bucket][key]; ok {
		return w, w != nil
	}
	v, ok := r.base[bucket][key]
	return v, ok
}

func (r *remoteTx) set(bucket, key string, sealed []byte) {
	if r.writes == nil {
		r.writes = map[string]map[string][]byte{}
	}
	b := r.writes[bucket]
	if b == nil {
		b = map[string][]byte{}
		r.writes[bucket] = b
	}
	b[key] = sealed
}

// keys returns the keys of bucket in byte order.
func (r *remoteTx) keys(bucket string) []string {
	base, w := r.base[bucket], r.writes[bucket]
	out := make([]string, 0, len(base)+len(w))
	for k := range base {
		if v, ok := w[k]; !ok || v != nil {
			out = append(out, k)
		}
	}
	for k, v := range w {
		if _, ok := base[k]; !ok && v != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// merged returns the state after the transaction: changed buckets copied, the rest shared.
func (r *remoteTx) merged() map[string]map[string][]byte {
	out := make(map[string]map[string][]byte, len(r.base)+len(r.writes))
	for b, keys := range r.base {
		out[b] = keys
	}
	for b, w := range r.writes {
		nb := make(map[string][]byte, len(r.base[b])+len(w))
		for k, v := range r.base[b] {
			nb[k] = v
		}
		for k, v := range w {
			if v == nil {
				delete(nb, k)
			} else {
				nb[k] = v
			}
		}
		if len(nb) == 0 {
			delete(out, b)
		} else {
			out[b] = nb
		}
	}
	return out
}
