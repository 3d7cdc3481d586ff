package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cloister-dev/cloister/store"
)

// staleFirst answers its first Load with no state, as a replica that read just before another
// replica created the state sees.
type staleFirst struct {
	*memRemote
	n atomic.Int32
}

func (s *staleFirst) Load(ctx context.Context, last *store.RemoteState) (*store.RemoteState, error) {
	if s.n.Add(1) == 1 {
		return nil, nil
	}
	return s.memRemote.Load(ctx, last)
}

// staleShelf answers its first LoadKeys with an empty shelf.
type staleShelf struct {
	*memShelf
	n atomic.Int32
}

func (s *staleShelf) LoadKeys(ctx context.Context) (store.KeyCopies, error) {
	if s.n.Add(1) == 1 {
		return store.KeyCopies{}, nil
	}
	return s.memShelf.LoadKeys(ctx)
}

// TestRemoteLostCreateRace: two replicas start on an empty namespace at once and both try to
// create the state. The loser keeps no key of its own: it takes the winner's (from a peer),
// opens the winner's state, and opens it again after a restart on the same directory.
func TestRemoteLostCreateRace(t *testing.T) {
	r := &memRemote{}
	shelf := &memShelf{}
	a, err := store.OpenRemote(t.Context(), t.TempDir(), remoteSealer(t, t.TempDir()), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("b", "k", []byte("winner")) }); err != nil {
		t.Fatal(err)
	}
	bdir, bcpu := t.TempDir(), t.TempDir()
	var calls int
	// B read the state and the shelf before A wrote either.
	b, err := store.OpenRemote(t.Context(), bdir, remoteSealer(t, bcpu), &staleFirst{memRemote: r}, store.Options{Keys: &staleShelf{memShelf: shelf}, FetchKey: giver(a, &calls)})
	if err != nil {
		t.Fatalf("the replica that lost the race to create the state: %v", err)
	}
	read := func(db *store.DB) string {
		var v []byte
		if err := db.View(t.Context(), func(tx *store.Tx) error { v, err = tx.Get("b", "k"); return err }); err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if got := read(b); got != "winner" {
		t.Fatalf("the loser reads %q, want the winner's state", got)
	}
	b.Close()
	b, err = store.OpenRemote(t.Context(), bdir, remoteSealer(t, bcpu), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatalf("the loser after a restart on its directory: %v", err)
	}
	defer b.Close()
	if got := read(b); got != "winner" {
		t.Fatalf("the loser reads %q after a restart, want the winner's state", got)
	}
}

// TestRemoteAnchorDeletedRefused: on a directory that keeps its data key, a deleted record of
// the newest version seen (state-version) and a state put back with no peer to confirm the
// version are refused; an unreachable peer service is an error to retry, not a start without
// the check; with a peer that saw the newest version, the replayed state is refused too.
func TestRemoteAnchorDeletedRefused(t *testing.T) {
	r, shelf := &memRemote{}, &memShelf{}
	cpu, dir := t.TempDir(), t.TempDir()
	db, err := store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, "k", "v1")
	old := r.snapshot()
	put(t, db, "k", "v2")
	db.Close()
	r.put(old)
	if err := os.Remove(filepath.Join(dir, store.VersionFile)); err != nil {
		t.Fatal(err)
	}
	noPeer := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, fmt.Errorf("%w: no peer gave the key", store.ErrNoKey)
	}
	if _, err := store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf, FetchKey: noPeer}); !errors.Is(err, store.ErrRolledBack) || !strings.Contains(err.Error(), "no peer confirmed") {
		t.Fatalf("replayed state on a directory whose state-version was deleted, no peer: %v, want ErrRolledBack", err)
	}
	down := func(context.Context, func([]byte) error) ([]byte, store.Version, error) {
		return nil, store.Version{}, fmt.Errorf("%w: listing the peers", store.ErrUnavailable)
	}
	if _, err := store.OpenRemote(t.Context(), dir, remoteSealer(t, cpu), r, store.Options{Keys: shelf, FetchKey: down}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the same with the peers unreachable: %v, want ErrUnavailable (retry)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.VersionFile)); err == nil {
		t.Fatal("a refused start wrote state-version")
	}
}
