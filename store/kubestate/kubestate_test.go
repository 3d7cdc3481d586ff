package kubestate_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const ns = "default"

// replica opens the shared state name as one replica would: its own directory, holding a copy
// of the first replica's data key file and record of the newest version seen (keyFrom; "" for
// the first replica).
func replica(t *testing.T, c kubernetes.Interface, name, keyFrom string, opts kubestate.Options) (*store.DB, *kubestate.Remote, string) {
	t.Helper()
	dir := t.TempDir()
	if keyFrom != "" {
		for _, name := range []string{store.KeyFile, store.VersionFile} {
			raw, err := os.ReadFile(filepath.Join(keyFrom, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	db, r := open(t, c, name, dir, opts)
	t.Cleanup(func() { db.Close() })
	return db, r, dir
}

var sharedSealer struct {
	once sync.Once
	s    seal.Sealer
	dir  string
}

// theSealer is one simulated sealer for the whole test binary: replicas share data-key.json
// copies, which only the same sealer unseals (until keys are shared by attestation).
func theSealer(t *testing.T) seal.Sealer {
	sharedSealer.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubestate-seal-")
		if err != nil {
			t.Fatal(err)
		}
		sharedSealer.dir = dir
		sharedSealer.s, err = seal.NewSimulated(filepath.Join(dir, "seal-key"))
		if err != nil {
			t.Fatal(err)
		}
	})
	return sharedSealer.s
}

func open(t *testing.T, c kubernetes.Interface, name, dir string, opts kubestate.Options) (*store.DB, *kubestate.Remote) {
	t.Helper()
	db, r, err := tryOpen(t, c, name, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, r
}

func tryOpen(t *testing.T, c kubernetes.Interface, name, dir string, opts kubestate.Options) (*store.DB, *kubestate.Remote, error) {
	opts.Namespace, opts.Name = ns, name
	r, err := kubestate.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenRemote(t.Context(), dir, theSealer(t), r, store.Options{})
	return db, r, err
}

func count(t *testing.T, db *store.DB, bucket, key string) uint64 {
	t.Helper()
	var n uint64
	err := db.View(t.Context(), func(tx *store.Tx) error {
		v, err := tx.Get(bucket, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKubeState(t *testing.T) {
	cluster := kubetest.Start(t)
	c := cluster.Client

	t.Run("ConcurrentWritersOnReplicas", func(t *testing.T) { testConcurrent(t, c) })
	t.Run("Sharding", func(t *testing.T) { testSharding(t, c) })
	t.Run("ReplayedManifestRefused", func(t *testing.T) { testReplay(t, c) })
	t.Run("TamperedShardRefused", func(t *testing.T) { testTamper(t, c) })
	t.Run("DeletedStateRefused", func(t *testing.T) { testDeleted(t, c) })
	t.Run("KeyShelf", func(t *testing.T) { testKeyShelf(t, c) })
}

// testConcurrent: three replicas increment one counter at once, through Update and Batch; no
// increment is lost and conflicts were met and retried.
func testConcurrent(t *testing.T, c kubernetes.Interface) {
	db1, _, dir1 := replica(t, c, "conc", "", kubestate.Options{})
	db2, _, _ := replica(t, c, "conc", dir1, kubestate.Options{})
	db3, _, _ := replica(t, c, "conc", dir1, kubestate.Options{})
	dbs := []*store.DB{db1, db2, db3}
	const perWorker, workers = 30, 4
	var wg sync.WaitGroup
	errs := make(chan error, len(dbs)*workers)
	for i, db := range dbs {
		for w := range workers {
			wg.Go(func() {
				for range perWorker {
					write := db.Update
					if w%2 == 1 {
						write = db.Batch
					}
					if err := write(t.Context(), func(tx *store.Tx) error {
						_, err := tx.Next("counts", "w")
						return err
					}); err != nil {
						errs <- fmt.Errorf("replica %d: %w", i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := uint64(len(dbs) * workers * perWorker)
	for i, db := range dbs {
		if got := count(t, db, "counts", "w"); got != want {
			t.Errorf("replica %d reads count %d, want %d", i, got, want)
		}
	}
	var conflicts uint64
	for _, db := range dbs {
		conflicts += db.RemoteStats().Conflicts
	}
	if conflicts == 0 {
		t.Errorf("no conflicts met by %d concurrent writers on 3 replicas: the compare-and-swap was not exercised", len(dbs)*workers)
	}
	t.Logf("%d increments, %d conflicts retried", want, conflicts)
}

// testSharding: a state larger than one shard is split over several Secrets, each under the
// limit; another replica reads it whole; a one-value change writes one new shard.
func testSharding(t *testing.T, c kubernetes.Interface) {
	opts := kubestate.Options{ShardSize: 8 << 10}
	db1, r1, dir1 := replica(t, c, "big", "", opts)
	value := make([]byte, 300)
	err := db1.Update(t.Context(), func(tx *store.Tx) error {
		for i := range 200 {
			binary.BigEndian.PutUint64(value, uint64(i))
			if err := tx.Put("b", fmt.Sprintf("k%03d", i), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "cloister.dev/state=big,cloister.dev/state-role=shard"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) < 8 {
		t.Fatalf("%d shard Secrets for ~65 KB of state in 8 KiB shards, want at least 8", len(list.Items))
	}
	for _, s := range list.Items {
		if n := len(s.Data["shard"]); n > opts.ShardSize {
			t.Errorf("shard %s is %d bytes, over the %d limit", s.Name, n, opts.ShardSize)
		}
	}
	db2, _, _ := replica(t, c, "big", dir1, opts)
	err = db2.View(t.Context(), func(tx *store.Tx) error {
		n := 0
		err := tx.ForEach("b", func(k string, v []byte) error {
			if want := fmt.Sprintf("k%03d", binary.BigEndian.Uint64(v)); k != want {
				return fmt.Errorf("key %s holds the value of %s", k, want)
			}
			n++
			return nil
		})
		if err == nil && n != 200 {
			err = fmt.Errorf("read %d entries, want 200", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, before := r1.APICalls()
	if err := db1.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("b", "k007", value) }); err != nil {
		t.Fatal(err)
	}
	_, after := r1.APICalls()
	// One new shard, the manifest, the old shard's deletion (in the background, maybe later).
	if d := after - before; d < 2 || d > 3 {
		t.Errorf("changing one value of a %d-shard state took %d API writes, want 2 or 3", len(list.Items), d)
	}
}

// testReplay: the manifest Secret of an older state put back is refused by a running replica
// and by a replica restarted from its directory.
func testReplay(t *testing.T, c kubernetes.Interface) {
	db, _, dir := replica(t, c, "replay", "", kubestate.Options{})
	put := func(v string) {
		if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("s", "k", []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("old")
	old, err := c.CoreV1().Secrets(ns).Get(t.Context(), "replay", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	put("new")
	cur, err := c.CoreV1().Secrets(ns).Get(t.Context(), "replay", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Data = old.Data
	if _, err := c.CoreV1().Secrets(ns).Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = db.View(t.Context(), func(*store.Tx) error { return nil })
	if !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("View on a replayed state: %v, want ErrRolledBack", err)
	}
	t.Logf("running replica: %v", err)
	err = db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("s", "k", []byte("x")) })
	if !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("Update on a replayed state: %v, want ErrRolledBack", err)
	}
	db.Close()
	if _, _, err := tryOpen(t, c, "replay", dir, kubestate.Options{}); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("restarted replica on a replayed state: %v, want ErrRolledBack", err)
	} else {
		t.Logf("restarted replica: %v", err)
	}
}

// testTamper: an entry dropped from a shard is caught by the sealed header.
func testTamper(t *testing.T, c kubernetes.Interface) {
	db, _, _ := replica(t, c, "tamper", "", kubestate.Options{})
	if err := db.Update(t.Context(), func(tx *store.Tx) error {
		if err := tx.Put("s", "a", []byte("1")); err != nil {
			return err
		}
		return tx.Put("s", "b", []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	m, err := c.CoreV1().Secrets(ns).Get(t.Context(), "tamper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the inline shard without entry "b" and fix the layout's digest: only the
	// sealed header can tell.
	m.Data["shard"], m.Data["layout"] = kubestate.DropEntryForTest(t, m.Data["shard"], "s", "b")
	if _, err := c.CoreV1().Secrets(ns).Update(t.Context(), m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = db.View(t.Context(), func(*store.Tx) error { return nil })
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("View on a state missing an entry: %v, want ErrCorrupt", err)
	}
	t.Log(err)
}

// testDeleted: a deleted state is not started over by a replica that saw it.
func testDeleted(t *testing.T, c kubernetes.Interface) {
	db, _, dir := replica(t, c, "deleted", "", kubestate.Options{})
	if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("s", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Secrets(ns).Delete(t.Context(), "deleted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := db.View(t.Context(), func(*store.Tx) error { return nil }); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("View on a deleted state: %v, want ErrRolledBack", err)
	}
	db.Close()
	if _, _, err := tryOpen(t, c, "deleted", dir, kubestate.Options{}); !errors.Is(err, store.ErrRolledBack) {
		t.Fatalf("restarted replica on a deleted state: %v, want ErrRolledBack", err)
	}
}
