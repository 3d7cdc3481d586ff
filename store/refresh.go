package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
)

// Reads of a shared state: every read transaction, and every Refresh, is served by a load of
// the newest state that started after the call did, so that it sees every change committed
// (on any replica) before it began. Calls that arrive while a load runs share the next one:
// under load, one quorum read of the manifest object serves many requests.

// loader coalesces the loads of a shared state.
type loader struct {
	mu      sync.Mutex // guards waiting and running
	waiting []chan loaded
	running bool
}

type loaded struct {
	st  *RemoteState
	err error
}

// loadFresh returns a state loaded after the call began.
func (db *DB) loadFresh(ctx context.Context) (*RemoteState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &db.remote.loads
	ch := make(chan loaded, 1)
	l.mu.Lock()
	l.waiting = append(l.waiting, ch)
	if !l.running {
		l.running = true
		go db.runLoads()
	}
	l.mu.Unlock()
	select {
	case res := <-ch:
		return res.st, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (db *DB) runLoads() {
	l := &db.remote.loads
	for {
		l.mu.Lock()
		waiting := l.waiting
		l.waiting = nil
		if len(waiting) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(db.remote.ctx, remoteOpTimeout)
		st, err := db.remoteLoad(ctx)
		cancel()
		for _, ch := range waiting {
			ch <- loaded{st, err}
		}
	}
}

// Shared reports whether db holds a shared state (see OpenRemote).
func (db *DB) Shared() bool { return db.remote != nil }

// Refresh reads the newest shared state (see OpenRemote) and returns a fingerprint of the
// entries of buckets in it, which changes whenever one of them is put or deleted, on any
// replica: a replica that keeps something derived from those buckets compares it with the
// fingerprint it had to know whether to read them again. For an embedded store, which only
// this process changes, it returns the zero fingerprint.
func (db *DB) Refresh(ctx context.Context, buckets ...string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	if db.remote == nil {
		return fp, nil
	}
	st, err := db.loadFresh(ctx)
	if err != nil {
		return fp, err
	}
	if err := db.syncVersion(); err != nil {
		return fp, err
	}
	key := strings.Join(buckets, "\x00")
	r := db.remote
	r.mu.Lock()
	if r.fpState == st && r.fpKey == key {
		fp = r.fp
		r.mu.Unlock()
		return fp, nil
	}
	r.mu.Unlock()
	h := sha256.New()
	var n [4]byte
	for _, b := range buckets {
		keys := st.Buckets[b]
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write([]byte(b))
		binary.BigEndian.PutUint32(n[:], uint32(len(keys)))
		h.Write(n[:])
		for _, k := range slices.Sorted(mapKeys(keys)) {
			// Sealed values carry random nonces: a rewrite changes them even with the same value.
			v := keys[k]
			binary.BigEndian.PutUint32(n[:], uint32(len(k)))
			h.Write(n[:])
			h.Write([]byte(k))
			binary.BigEndian.PutUint32(n[:], uint32(len(v)))
			h.Write(n[:])
			h.Write(v)
		}
	}
	h.Sum(fp[:0])
	r.mu.Lock()
	r.fpState, r.fpKey, r.fp = st, key, fp
	r.mu.Unlock()
	return fp, nil
}
