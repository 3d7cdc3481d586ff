package store_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/store"
)

// memShelf is a KeyShelf in memory.
type memShelf struct {
	mu     sync.Mutex
	copies store.KeyCopies
	puts   int
}

func (m *memShelf) LoadKeys(context.Context) (store.KeyCopies, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return store.KeyCopies{Sealed: maps.Clone(m.copies.Sealed), Recovery: m.copies.Recovery}, nil
}

func (m *memShelf) PutKey(_ context.Context, id string, sealed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.copies.Sealed == nil {
		m.copies.Sealed = map[string][]byte{}
	}
	m.copies.Sealed[id] = sealed
	m.puts++
	return nil
}

func (m *memShelf) PutRecovery(_ context.Context, record []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.copies.Recovery = record
	return nil
}

// giver returns a KeyFetcher that gives db's data key (as a peer would) and the version it saw.
func giver(db *store.DB, calls *int) store.KeyFetcher {
	return func(_ context.Context, check func([]byte) error) ([]byte, store.Version, error) {
		*calls++
		var key []byte
		db.WithDataKey(func(k []byte) error { key = bytes.Clone(k); return nil })
		if err := check(key); err != nil {
			return nil, store.Version{}, err
		}
		return key, db.Version(), nil
	}
}

func put(t *testing.T, db *store.DB, key, value string) {
	t.Helper()
	if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("b", key, []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteKeySharing: the first replica creates the key and shelves its copy; a replica on
// the same CPU with an empty directory unseals its shelf copy without a peer; a replica on a new
// CPU gets the key from a peer, shelves its own copy, and needs no peer after that; without a
// peer it fails with ErrNoKey; a peer of another deployment is refused by the header.
func TestRemoteKeySharing(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	cpu1 := t.TempDir()
	first := openReplica(t, cpu1, r, store.Options{Keys: shelf})
	defer first.Close()
	put(t, first, "k", "v1")
	if len(shelf.copies.Sealed) != 1 {
		t.Fatalf("the shelf holds %d copies after the first replica, want 1", len(shelf.copies.Sealed))
	}

	// Same CPU, empty directory (a restarted pod with an emptyDir): the shelf copy gives the
	// key; the peers are asked only for the newest version, and without one the replica starts
	// with a warning (see TestRemoteShelfRestartAsksPeers).
	noPeer := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, errors.New("no peer answered")
	}
	same, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, cpu1), r, store.Options{Keys: shelf, FetchKey: noPeer})
	if err != nil {
		t.Fatalf("same CPU, empty directory: %v", err)
	}
	if same.FreshnessWarning() == "" {
		t.Error("a start no peer confirmed gives no warning")
	}
	same.Close()

	// New CPU, no peer: ErrNoKey, and nothing written.
	cpu2 := t.TempDir()
	dir2 := t.TempDir()
	_, err = store.OpenRemote(t.Context(), dir2, remoteSealer(t, cpu2), r, store.Options{Keys: shelf})
	if !errors.Is(err, store.ErrNoKey) || !strings.Contains(err.Error(), "no copy sealed to this seal key") {
		t.Fatalf("new CPU without a peer: %v, want ErrNoKey naming the missing copy", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, store.KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was written without a key: %v", err)
	}

	// New CPU, a peer of another deployment: its key does not open the header.
	other, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), &memRemote{}, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var calls int
	_, err = store.OpenRemote(t.Context(), dir2, remoteSealer(t, cpu2), r, store.Options{Keys: shelf, FetchKey: giver(other, &calls)})
	if !errors.Is(err, store.ErrNoKey) || !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("a foreign peer's key: %v, want ErrNoKey and ErrKeyMismatch", err)
	}

	// New CPU, a real peer: gets the key, reads the state, shelves its own copy.
	calls = 0
	second, err := store.OpenRemote(t.Context(), dir2, remoteSealer(t, cpu2), r, store.Options{Keys: shelf, FetchKey: giver(first, &calls)})
	if err != nil {
		t.Fatalf("new CPU with a peer: %v", err)
	}
	if calls != 1 {
		t.Errorf("the peer was asked %d times, want 1", calls)
	}
	if got := get(t, second, "k"); got != "v1" {
		t.Errorf("the new replica reads %q, want v1", got)
	}
	second.Close()
	if len(shelf.copies.Sealed) != 2 {
		t.Errorf("the shelf holds %d copies, want 2 (one per seal key)", len(shelf.copies.Sealed))
	}
	// Its next start, even with an empty directory, needs no peer.
	again := openReplica(t, cpu2, r, store.Options{Keys: shelf, FetchKey: noPeer})
	again.Close()
}

// TestRemoteKeyPeerVersion: a replica that got the key from a peer refuses a state older than
// the newest the peer had seen (a replayed state shown only to the newcomer).
func TestRemoteKeyPeerVersion(t *testing.T) {
	r := &memRemote{}
	first, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	put(t, first, "k", "v1")
	old := r.snapshot()
	put(t, first, "k", "v2")
	r.put(old)
	var calls int
	_, err = store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{FetchKey: giver(first, &calls)})
	if !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("a replayed state behind the peer's version: %v, want ErrRolledBack", err)
	}
}

// TestRemoteRecover: with no peer, a replica on a new CPU recovers the state with the key from
// elsewhere; nothing is sealed before Reseal, and after it the replica opens on its own.
func TestRemoteRecover(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	first, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatal(err)
	}
	put(t, first, "k", "v1")
	if err := first.SetRecovery([]byte(`{"generation":"g1"}`)); err != nil {
		t.Fatal(err)
	}
	var key []byte
	first.WithDataKey(func(k []byte) error { key = bytes.Clone(k); return nil })
	first.Close()

	cpu, dir := t.TempDir(), t.TempDir()
	wrong := bytes.Repeat([]byte{1}, 32)
	if _, err := store.RecoverRemote(t.Context(), dir, remoteSealer(t, cpu), r, wrong, store.Options{Keys: shelf}); !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("RecoverRemote with a wrong key: %v, want ErrKeyMismatch", err)
	}
	db, err := store.RecoverRemote(t.Context(), dir, remoteSealer(t, cpu), r, key, store.Options{Keys: shelf})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := db.Recovery(); err != nil || string(rec) != `{"generation":"g1"}` {
		t.Errorf("Recovery() = %s, %v; want the shelf's record", rec, err)
	}
	if len(shelf.copies.Sealed) != 1 {
		t.Errorf("the shelf holds %d copies before Reseal, want 1", len(shelf.copies.Sealed))
	}
	if err := db.Reseal(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if len(shelf.copies.Sealed) != 2 {
		t.Errorf("the shelf holds %d copies after Reseal, want 2", len(shelf.copies.Sealed))
	}
	db, err = store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatalf("open after the recovery: %v", err)
	}
	defer db.Close()
	if got := get(t, db, "k"); got != "v1" {
		t.Errorf("read %q after the recovery, want v1", got)
	}
}

func get(t *testing.T, db *store.DB, key string) string {
	t.Helper()
	var v []byte
	if err := db.View(t.Context(), func(tx *store.Tx) error {
		var err error
		v, err = tx.Get("b", key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(v)
}
