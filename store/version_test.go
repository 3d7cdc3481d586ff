package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
)

// mustOpen opens the store in dir with s, failing the test on an error.
func mustOpen(t *testing.T, dir string, s seal.Sealer) *DB {
	t.Helper()
	db, err := Open(dir, s, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVersionCountsChanges(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	v0 := db.Version()
	put(t, db, "b", "k", []byte("1"))
	v1 := db.Version()
	if v1.N != v0.N+1 || v1.Hash == v0.Hash {
		t.Fatalf("after a Put: version %d %x, before %d %x; want the next version with a new hash", v1.N, v1.Hash[:4], v0.N, v0.Hash[:4])
	}
	// Transactions that change nothing leave the version as it is.
	ctx := context.Background()
	for name, fn := range map[string]func(*Tx) error{
		"no writes":              func(*Tx) error { return nil },
		"a read":                 func(tx *Tx) error { _, err := tx.Get("b", "k"); return err },
		"deleting a missing key": func(tx *Tx) error { return tx.Delete("b", "missing") },
	} {
		if err := db.Update(ctx, fn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if db.Version() != v1 {
			t.Errorf("%s moved the version from %d to %d", name, v1.N, db.Version().N)
		}
	}
	if err := db.Batch(ctx, func(tx *Tx) error { return tx.Delete("b", "k") }); err != nil {
		t.Fatal(err)
	}
	if v := db.Version(); v.N != v1.N+1 {
		t.Errorf("after a Delete in a Batch: version %d, want %d", v.N, v1.N+1)
	}
	// A rolled-back transaction does not count.
	if err := db.Update(ctx, func(tx *Tx) error { tx.Put("b", "x", nil); return errors.New("no") }); err == nil {
		t.Fatal("the failing transaction succeeded")
	}
	if v := db.Version(); v.N != v1.N+1 {
		t.Errorf("after a rolled-back transaction: version %d, want %d", v.N, v1.N+1)
	}
}

// backup copies the files of the store in dir.
func backup(t *testing.T, dir string) map[string][]byte { return snapshot(t, dir) }

// restore writes the named files of b back into dir.
func restore(t *testing.T, dir string, b map[string][]byte, names ...string) {
	t.Helper()
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), b[n])
	}
}

// TestRollbackRefused: a state.db replaced by an older copy is refused with both versions
// named, and left as it is; putting the newest back works; restoring a whole directory from
// a backup is accepted (what a local record cannot catch).
func TestRollbackRefused(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	old := backup(t, dir)
	db := mustOpen(t, dir, s)
	put(t, db, "b", "k", []byte("newer"))
	put(t, db, "b", "k", []byte("newest"))
	newest := db.Version()
	db.Close()
	current := backup(t, dir)

	restore(t, dir, old, StateFile)
	_, err := Open(dir, s, Options{})
	want := fmt.Sprintf("state.db is at state version %d, but this store reached version %d", newest.N-2, newest.N)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of an older state.db: %v; want ErrRolledBack saying %q", err, want)
	}
	if after := snapshot(t, dir); !bytes.Equal(after[StateFile], old[StateFile]) || !bytes.Equal(after[VersionFile], current[VersionFile]) {
		t.Error("the refused Open changed the files")
	}

	restore(t, dir, current, StateFile)
	db = mustOpen(t, dir, s)
	if v, _ := get(t, db, "b", "k"); string(v) != "newest" || db.Version() != newest {
		t.Errorf("with the newest state.db back: value %q, version %d; want newest, %d", v, db.Version().N, newest.N)
	}
	db.Close()

	restore(t, dir, old, StateFile, VersionFile)
	db = mustOpen(t, dir, s)
	if _, err := get(t, db, "b", "k"); err == nil {
		t.Error("after restoring a whole older directory, a later value is there")
	}
	db.Close()
}

// TestForkRefused: a state.db of the same version as the newest but another history (a copy
// the Coordinator advanced elsewhere) is refused.
func TestForkRefused(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	base := backup(t, dir)
	db := mustOpen(t, dir, s)
	put(t, db, "b", "k", []byte("A"))
	db.Close()
	forkA := backup(t, dir)
	restore(t, dir, base, StateFile, VersionFile)
	db = mustOpen(t, dir, s)
	put(t, db, "b", "k", []byte("B"))
	n := db.Version().N
	db.Close()

	restore(t, dir, forkA, StateFile)
	_, err := Open(dir, s, Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), fmt.Sprintf("is at state version %d with hash", n)) || !strings.Contains(err.Error(), "is not the state this store wrote") {
		t.Fatalf("Open of a forked state.db: %v; want ErrRolledBack naming version %d and both hashes", err, n)
	}
}

// TestStateOrRecordMissing: deleting state.db of a store that was written does not start
// it over, and deleting the record of its version does not let any state.db pass.
func TestStateOrRecordMissing(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	files := backup(t, dir)

	os.Remove(filepath.Join(dir, StateFile))
	before := snapshot(t, dir)
	_, err := Open(dir, s, Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "state.db is missing, but this store reached state version 1") {
		t.Fatalf("Open without state.db: %v; want ErrRolledBack", err)
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("the refused Open changed the directory")
	}

	restore(t, dir, files, StateFile)
	os.Remove(filepath.Join(dir, VersionFile))
	_, err = Open(dir, s, Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "state-version, which records the newest version this store reached, is missing") {
		t.Fatalf("Open without %s: %v; want ErrRolledBack", VersionFile, err)
	}
}

// TestVersionRecordDamaged: a torn write to one slot leaves the version before, which the
// state is one ahead of (accepted, as after a crash between the commit and the record);
// a record in neither slot is refused as damage.
func TestVersionRecordDamaged(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	db := mustOpen(t, dir, s)
	put(t, db, "b", "k", []byte("v"))
	n := db.Version().N
	db.Close()
	path := filepath.Join(dir, VersionFile)
	good := readFile(t, path)

	torn := bytes.Clone(good)
	torn[int(n%2)*versionSlotSize+20] ^= 1
	writeFile(t, path, torn)
	db = mustOpen(t, dir, s)
	if db.Version().N != n {
		t.Errorf("version %d, want %d", db.Version().N, n)
	}
	db.Close()
	if v, err := readAnchor(mustRoot(t, dir), db.aead); err != nil || v.N != n {
		t.Errorf("after the Open the record holds %d (%v), want %d", v.N, err, n)
	}

	for name, b := range map[string][]byte{
		"both slots damaged": func() []byte { b := bytes.Clone(good); b[20] ^= 1; b[versionSlotSize+20] ^= 1; return b }(),
		"truncated":          good[:versionSlotSize],
		"empty":              nil,
	} {
		writeFile(t, path, b)
		_, err := Open(dir, s, Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), VersionFile) {
			t.Errorf("%s: Open: %v; want ErrCorrupt naming %s", name, err, VersionFile)
		}
	}
	// The record of another store does not authenticate.
	other := filepath.Join(t.TempDir(), "other")
	odb, err := Open(other, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	odb.Close()
	writeFile(t, path, readFile(t, filepath.Join(other, VersionFile)))
	if _, err := Open(dir, s, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("with another store's %s: Open: %v; want ErrCorrupt", VersionFile, err)
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestStoreBeforeVersions: a store made before state versions (no record in state.db, no
// VersionFile) opens, and is versioned from then on.
func TestStoreBeforeVersions(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	bdb, err := bbolt.Open(filepath.Join(dir, StateFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte(metaBucket)).Delete([]byte(versionKey)) })
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, VersionFile))
	db := mustOpen(t, dir, s)
	if db.Version().N != 0 {
		t.Errorf("version %d, want 0", db.Version().N)
	}
	put(t, db, "b", "k", []byte("v"))
	db.Close()
	if v, err := readAnchor(mustRoot(t, dir), db.aead); err != nil || v.N != 1 {
		t.Errorf("recorded version %d (%v), want 1", v.N, err)
	}
}

// FuzzVersionFile: any VersionFile beside a sound store opens only if one of its slots
// authenticates under the store's key, and is otherwise refused with ErrCorrupt or
// ErrRolledBack naming it; Open never panics and never accepts a state older than a record
// that authenticates.
func FuzzVersionFile(f *testing.F) {
	s := newSealer(f)
	dir := filepath.Join(f.TempDir(), "store")
	db, err := Open(dir, s, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := db.Update(context.Background(), func(tx *Tx) error { return tx.Put("b", "k", []byte{byte(i)}) }); err != nil {
			f.Fatal(err)
		}
	}
	n := db.Version().N
	db.Close()
	files := map[string][]byte{}
	for _, name := range []string{StateFile, KeyFile, VersionFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		files[name] = b
	}
	good := files[VersionFile]
	f.Add(good)
	f.Add(good[:versionSlotSize])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(make([]byte, 2*versionSlotSize))
	for _, at := range []int{0, 1, 20, versionSlotSize, versionSlotSize + 1, versionSlotSize + 40} {
		b := bytes.Clone(good)
		b[at] ^= 0x80
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		dir := filepath.Join(t.TempDir(), "store")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, StateFile), files[StateFile])
		writeFile(t, filepath.Join(dir, KeyFile), files[KeyFile])
		writeFile(t, filepath.Join(dir, VersionFile), record)
		db, err := Open(dir, s, Options{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), VersionFile) {
				t.Fatalf("Open error = %v, want ErrCorrupt or ErrRolledBack naming %s", err, VersionFile)
			}
			return
		}
		defer db.Close()
		if db.Version().N != n {
			t.Fatalf("opened at version %d, want %d", db.Version().N, n)
		}
		if v, err := readAnchor(db.root, db.aead); err != nil || v.N != n {
			t.Fatalf("after Open the record holds version %d (%v), want %d", v.N, err, n)
		}
	})
}

// TestVersionRecordFailure: a commit whose version cannot be recorded is reported as an
// error (a caller must not act on a change a rollback could undo), and later writes are
// refused; the commit itself stays.
func TestVersionRecordFailure(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	db := mustOpen(t, dir, s)
	db.anchor.f.Close() // every write to the record now fails
	err := db.Update(context.Background(), func(tx *Tx) error { return tx.Put("b", "k", []byte("v")) })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the change was committed, but recording state version") {
		t.Fatalf("Update: %v; want ErrCorrupt saying the version was not recorded", err)
	}
	if err := db.Batch(context.Background(), func(tx *Tx) error { return tx.Put("b", "k2", nil) }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a later Batch: %v; want it refused", err)
	}
	if v, err := get(t, db, "b", "k"); err != nil || string(v) != "v" {
		t.Errorf("the committed value: %q, %v", v, err)
	}
	db.Close()
	// The record is one version behind the state: a crash's case, accepted.
	db = mustOpen(t, dir, s)
	defer db.Close()
	if v, err := get(t, db, "b", "k"); err != nil || string(v) != "v" {
		t.Errorf("after a restart: %q, %v", v, err)
	}
}

// TestConcurrentBatchesRecorded: after many concurrent Batch calls return, the record holds
// the newest version.
func TestConcurrentBatchesRecorded(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	db := mustOpen(t, dir, s)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if err := db.Batch(context.Background(), func(tx *Tx) error { return tx.Put("b", fmt.Sprint(i), nil) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want := db.Version()
	if v, err := readAnchor(db.root, db.aead); err != nil || v != want {
		t.Errorf("record holds version %d (%v), want %d", v.N, err, want.N)
	}
	db.Close()
}

// TestVersionFileLink: a VersionFile that is a symbolic link (here to state.db, which a
// record written through it would damage) is refused.
func TestVersionFileLink(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	os.Remove(filepath.Join(dir, VersionFile))
	if err := os.Symlink(StateFile, filepath.Join(dir, VersionFile)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	_, err := Open(dir, s, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "state-version is not a regular file") {
		t.Fatalf("Open: %v; want ErrCorrupt saying %s is not a regular file", err, VersionFile)
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("the refused Open changed the directory")
	}
}
