package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
)

// memRemote is a Remote in memory with the same compare-and-swap as the Kubernetes one
// (package kubestate, tested against a real API server there).
type memRemote struct {
	mu  sync.Mutex
	cur *store.RemoteState
	rev int
}

func (m *memRemote) Load(_ context.Context, last *store.RemoteState) (*store.RemoteState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if last != nil && m.cur != nil && last.Rev == m.cur.Rev {
		return last, nil
	}
	return m.cur, nil
}

func (m *memRemote) Commit(_ context.Context, base, next *store.RemoteState) (*store.RemoteState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case base == nil && m.cur != nil, base != nil && (m.cur == nil || base.Rev != m.cur.Rev):
		return nil, store.ErrConflict
	}
	m.rev++
	st := *next
	st.Rev = strconv.Itoa(m.rev)
	m.cur = &st
	return &st, nil
}

// put replaces the state with st as an attacker with write access to the API would.
func (m *memRemote) put(st *store.RemoteState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	c := *st
	c.Rev = strconv.Itoa(m.rev)
	m.cur = &c
}

func (m *memRemote) snapshot() *store.RemoteState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

func remoteSealer(t *testing.T, dir string) seal.Sealer {
	s, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openReplicas opens n replicas of one shared state, each with its own directory holding a copy
// of the first one's key file.
func openReplicas(t *testing.T, r store.Remote, n int) ([]*store.DB, []string, seal.Sealer) {
	t.Helper()
	sealDir := t.TempDir()
	s := remoteSealer(t, sealDir)
	var dbs []*store.DB
	var dirs []string
	for i := range n {
		dir := t.TempDir()
		if i > 0 {
			raw, err := os.ReadFile(filepath.Join(dirs[0], store.KeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, store.KeyFile), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		db, err := store.OpenRemote(t.Context(), dir, s, r, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs, dirs = append(dbs, db), append(dirs, dir)
	}
	return dbs, dirs, s
}

func TestRemoteTransactions(t *testing.T) {
	dbs, _, _ := openReplicas(t, &memRemote{}, 2)
	a, b := dbs[0], dbs[1]
	err := a.Update(t.Context(), func(tx *store.Tx) error {
		for _, k := range []string{"c", "a", "b"} {
			if err := tx.Put("bk", k, []byte("v"+k)); err != nil {
				return err
			}
		}
		if err := tx.Delete("bk", "b"); err != nil {
			return err
		}
		v, err := tx.Get("bk", "a") // a transaction reads its own writes
		if err != nil || string(v) != "va" {
			return fmt.Errorf("Get a = %q, %v", v, err)
		}
		if _, err := tx.Get("bk", "b"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get of a deleted key: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version().N != 1 {
		t.Fatalf("version after one commit: %d, want 1", a.Version().N)
	}
	// Another replica reads the change at once, keys in order.
	var keys []string
	err = b.View(t.Context(), func(tx *store.Tx) error {
		return tx.ForEach("bk", func(k string, v []byte) error {
			if string(v) != "v"+k {
				return fmt.Errorf("key %s holds %q", k, v)
			}
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[a c]" {
		t.Fatalf("replica b reads keys %v, want [a c]", keys)
	}
	if a.Version() != b.Version() {
		t.Fatalf("replicas at versions %d and %d after a read", a.Version().N, b.Version().N)
	}
	// A write that fails leaves nothing.
	boom := errors.New("boom")
	if err := b.Update(t.Context(), func(tx *store.Tx) error {
		tx.Put("bk", "z", []byte("z"))
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if err := a.View(t.Context(), func(tx *store.Tx) error {
		_, err := tx.Get("bk", "z")
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("rolled-back write is visible: %v", err)
		}
		return tx.Put("bk", "y", nil)
	}); err == nil {
		t.Fatal("Put in a read transaction succeeded")
	}
	// Refresh's fingerprint changes with its buckets only.
	fp1, err := a.Refresh(t.Context(), "bk")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("other", "k", nil) }); err != nil {
		t.Fatal(err)
	}
	if fp2, _ := a.Refresh(t.Context(), "bk"); fp2 != fp1 {
		t.Fatal("a change to another bucket changed the fingerprint")
	}
	if err := b.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("bk", "a", []byte("va")) }); err != nil {
		t.Fatal(err)
	}
	if fp3, _ := a.Refresh(t.Context(), "bk"); fp3 == fp1 {
		t.Fatal("a rewrite in the bucket did not change the fingerprint")
	}
}

func TestRemoteConcurrentReplicas(t *testing.T) {
	dbs, _, _ := openReplicas(t, &memRemote{}, 3)
	const per = 200
	var wg sync.WaitGroup
	for _, db := range dbs {
		for w := range 4 {
			wg.Go(func() {
				for range per {
					write := db.Update
					if w%2 == 0 {
						write = db.Batch
					}
					if err := write(t.Context(), func(tx *store.Tx) error { _, err := tx.Next("c", "n"); return err }); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	err := dbs[0].View(t.Context(), func(tx *store.Tx) error {
		v, err := tx.Get("c", "n")
		if err != nil {
			return err
		}
		if n := binary.BigEndian.Uint64(v); n != 3*4*per {
			return fmt.Errorf("counter is %d, want %d", n, 3*4*per)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRemoteRollbackRefused(t *testing.T) {
	r := &memRemote{}
	dbs, dirs, s := openReplicas(t, r, 1)
	db := dbs[0]
	put := func(v string) {
		if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("b", "k", []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("1")
	old := r.snapshot()
	put("2")
	r.put(old)
	if err := db.View(t.Context(), func(*store.Tx) error { return nil }); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("View of a replayed state: %v, want ErrRolledBack", err)
	}
	db.Close()
	// The restarted replica remembers the newest version in its sealed VersionFile.
	if _, err := store.OpenRemote(t.Context(), dirs[0], s, r, store.Options{}); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("restart on a replayed state: %v, want ErrRolledBack", err)
	}
	// A deleted state is not started over either.
	r.put(&store.RemoteState{})
	r.mu.Lock()
	r.cur = nil
	r.mu.Unlock()
	if _, err := store.OpenRemote(t.Context(), dirs[0], s, r, store.Options{}); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("restart on a deleted state: %v, want ErrRolledBack", err)
	}
}

func TestRemoteForeignKeyRefused(t *testing.T) {
	r := &memRemote{}
	openReplicas(t, r, 1)
	dir := t.TempDir()
	// Another deployment's key: a key file of its own, made against an empty remote.
	other := &memRemote{}
	s := remoteSealer(t, t.TempDir())
	db, err := store.OpenRemote(t.Context(), dir, s, other, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.OpenRemote(t.Context(), dir, s, r, store.Options{}); !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("opening another deployment's shared state: %v, want ErrKeyMismatch", err)
	}
	// No key file at all: a clear error, nothing created.
	if _, err := store.OpenRemote(t.Context(), t.TempDir(), s, r, store.Options{}); err == nil {
		t.Fatal("a replica without a data key opened an existing shared state")
	}
}

// BenchmarkRemoteCommit is the store's CPU per commit of one counter on a shared state holding
// entries other 100-byte values (hashing the state for the header, copying a bucket), without
// the Remote's own cost (an API write, measured in e2e/kube).
func BenchmarkRemoteCommit(b *testing.B) {
	for _, entries := range []int{100, 10000} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			dir := b.TempDir()
			s, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
			if err != nil {
				b.Fatal(err)
			}
			db, err := store.OpenRemote(b.Context(), filepath.Join(dir, "state"), s, &memRemote{}, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			value := make([]byte, 100)
			if err := db.Update(b.Context(), func(tx *store.Tx) error {
				for i := range entries {
					if err := tx.Put("data", fmt.Sprintf("key-%06d", i), value); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := db.Update(b.Context(), func(tx *store.Tx) error { _, err := tx.Next("counts", "w"); return err }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// openReplica opens a replica of the shared state r on the CPU whose seal key is in cpu, with an
// empty directory of its own.
func openReplica(t *testing.T, cpu string, r store.Remote, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, cpu), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
