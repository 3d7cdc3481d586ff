package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/store"
)

// TestRemotePeerSeenSurvivesRestart: a replica refused an old state because of the giver's
// version still refuses it after a restart on the same directory, with or without the peer,
// and has written no data-key.json for it.
func TestRemotePeerSeenSurvivesRestart(t *testing.T) {
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
	cpu, dir := t.TempDir(), t.TempDir()
	var calls int
	for i, fetch := range []store.KeyFetcher{giver(first, &calls), giver(first, &calls), nil} {
		db, err := store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{FetchKey: fetch})
		if !errors.Is(err, store.ErrRolledBack) && !errors.Is(err, store.ErrNoKey) {
			if db != nil {
				db.Close()
			}
			t.Fatalf("start %d on a replayed state: %v, want ErrRolledBack (or ErrNoKey without a peer)", i, err)
		}
		if _, err := os.Stat(filepath.Join(dir, store.KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("start %d: %s after a refused state: %v, want none", i, store.KeyFile, err)
		}
	}
}

// TestRemoteShelfRestartAsksPeers: a replica restarted on its CPU with an empty directory gets
// the key from the shelf, but has no record of the newest version: it asks the peers, and
// refuses a replayed state; a later restart on the same directory refuses it without them.
func TestRemoteShelfRestartAsksPeers(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	cpu := t.TempDir()
	first := openReplica(t, cpu, r, store.Options{Keys: shelf})
	defer first.Close()
	put(t, first, "k", "v1")
	old := r.snapshot()
	put(t, first, "k", "v2")
	r.put(old)
	var calls int
	dir := t.TempDir()
	_, err := store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf, FetchKey: giver(first, &calls)})
	if !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("empty-directory restart on a replayed state: %v, want ErrRolledBack", err)
	}
	if calls != 1 {
		t.Fatalf("peers asked %d times, want 1", calls)
	}
	_, err = store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf})
	if !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("second restart without peers: %v, want ErrRolledBack", err)
	}
}

// TestRemoteShelfRestartNoPeer: with no peer answering, the replica starts on its shelf copy
// but says that the state's freshness is unconfirmed; with a peer it says nothing.
func TestRemoteShelfRestartNoPeer(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	cpu := t.TempDir()
	first := openReplica(t, cpu, r, store.Options{Keys: shelf})
	put(t, first, "k", "v1")
	if w := first.FreshnessWarning(); w != "" {
		t.Fatalf("the replica that created the state warns %q", w)
	}
	var calls int
	peer := giver(first, &calls)
	db := openReplica(t, cpu, r, store.Options{Keys: shelf, FetchKey: peer})
	if w := db.FreshnessWarning(); w != "" || calls != 1 {
		t.Fatalf("confirmed by a peer (asked %d times): warning %q, want none", calls, w)
	}
	db.Close()
	first.Close()
	gone := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, errors.New("no peer answered")
	}
	db = openReplica(t, cpu, r, store.Options{Keys: shelf, FetchKey: gone})
	defer db.Close()
	if w := db.FreshnessWarning(); !strings.Contains(w, "no peer confirmed the state's freshness") {
		t.Fatalf("unconfirmed start: warning %q", w)
	}
	if got := get(t, db, "k"); got != "v1" {
		t.Fatalf("k = %q, want v1", got)
	}
}

// TestRemoteDeletedStateRefused: when the state's Secrets are deleted but the shelf remains, a
// replica with an empty directory refuses to start a new deployment; once the shelf is deleted
// too (the operator's way to start over) it creates one.
func TestRemoteDeletedStateRefused(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	cpu := t.TempDir()
	first := openReplica(t, cpu, r, store.Options{Keys: shelf})
	put(t, first, "k", "v1")
	first.Close()
	r.mu.Lock()
	r.cur = nil
	r.mu.Unlock()
	_, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, cpu), r, store.Options{Keys: shelf})
	if !errors.Is(err, store.ErrStateDeleted) {
		t.Fatalf("deleted state, shelf kept: %v, want ErrStateDeleted", err)
	}
	if r.snapshot() != nil {
		t.Fatal("a new state was created over the deleted one")
	}
	shelf.mu.Lock()
	shelf.copies = store.KeyCopies{Recovery: []byte(`{}`)}
	shelf.mu.Unlock()
	if _, err = store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, cpu), r, store.Options{Keys: shelf}); !errors.Is(err, store.ErrStateDeleted) {
		t.Fatalf("deleted state, recovery record kept: %v, want ErrStateDeleted", err)
	}
	shelf.mu.Lock()
	shelf.copies = store.KeyCopies{}
	shelf.mu.Unlock()
	db, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, cpu), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatalf("after the shelf was deleted too: %v", err)
	}
	db.Close()
}

// TestRemotePeerSeenRace: a commit that lands while a new replica asks for the key is not
// taken for a replayed state.
func TestRemotePeerSeenRace(t *testing.T) {
	r := &memRemote{}
	first, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	put(t, first, "k", "v1")
	fetch := func(ctx context.Context, check func([]byte) error) ([]byte, store.Version, error) {
		put(t, first, "k", "v2") // an activation commits meanwhile
		var key []byte
		first.WithDataKey(func(k []byte) error { key = bytes.Clone(k); return nil })
		if err := check(key); err != nil {
			return nil, store.Version{}, err
		}
		return key, first.Version(), nil
	}
	db, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{FetchKey: fetch})
	if err != nil {
		t.Fatalf("a new replica during a commit: %v", err)
	}
	defer db.Close()
	if got := get(t, db, "k"); got != "v2" {
		t.Fatalf("k = %q, want v2", got)
	}
}

// failShelf is a shelf the API server does not answer for.
type failShelf struct{ memShelf }

func (*failShelf) LoadKeys(context.Context) (store.KeyCopies, error) {
	return store.KeyCopies{}, store.ErrUnavailable
}

// TestRemoteUnavailableIsNotNoKey: a shelf that cannot be read, or peers that cannot be listed,
// make a retryable error, not ErrNoKey (which sends the Coordinator into recovery mode).
func TestRemoteUnavailableIsNotNoKey(t *testing.T) {
	r := &memRemote{}
	first, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var calls int
	_, err = store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{Keys: &failShelf{}, FetchKey: giver(first, &calls)})
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNoKey) {
		t.Fatalf("unreadable shelf: %v, want ErrUnavailable and not ErrNoKey", err)
	}
	down := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, store.ErrUnavailable
	}
	_, err = store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{FetchKey: down})
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNoKey) {
		t.Fatalf("peers not listed: %v, want ErrUnavailable and not ErrNoKey", err)
	}
	refused := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, errors.New("refused")
	}
	_, err = store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{FetchKey: refused})
	if !errors.Is(err, store.ErrNoKey) {
		t.Fatalf("every peer refused: %v, want ErrNoKey", err)
	}
}
