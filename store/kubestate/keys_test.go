package kubestate_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	"k8s.io/client-go/kubernetes"
)

// testKeyShelf: the first replica shelves its sealed copy in NAME-keys; a replica with the
// same seal key and an empty directory opens from it; replicas writing their copies at once
// lose none (compare-and-swap); the recovery record round-trips.
func testKeyShelf(t *testing.T, c kubernetes.Interface) {
	const name = "shelf-state"
	r, err := kubestate.New(c, kubestate.Options{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	keys := r.Keys()
	cpu, err := seal.NewSimulated(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenRemote(t.Context(), t.TempDir(), cpu, r, store.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := store.OpenRemote(t.Context(), t.TempDir(), cpu, r, store.Options{Keys: keys})
	if err != nil {
		t.Fatalf("same seal key, empty directory: %v", err)
	}
	again.Close()

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = keys.PutKey(t.Context(), fmt.Sprintf("%032x", i+1), bytes.Repeat([]byte{byte(i)}, 61))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("PutKey %d: %v", i, err)
		}
	}
	copies, err := keys.LoadKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(copies.Sealed) != 9 {
		t.Errorf("the shelf holds %d copies, want 9 (the replica's and 8 written at once)", len(copies.Sealed))
	}
	if err := db.SetRecovery([]byte(`{"g":1}`)); err != nil {
		t.Fatal(err)
	}
	if rec, err := db.Recovery(); err != nil || string(rec) != `{"g":1}` {
		t.Errorf("Recovery() = %s, %v; want the record set", rec, err)
	}
	if err := keys.PutKey(t.Context(), "not-an-id", make([]byte, 61)); err == nil {
		t.Error("PutKey accepted a malformed seal key ID")
	}
}
