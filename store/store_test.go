package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// newSealer returns a simulated sealer whose key file lives outside any
// store directory.
func newSealer(t testing.TB) *seal.Simulated {
	t.Helper()
	s, err := seal.NewSimulated(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatalf("NewSimulated: %v", err)
	}
	return s
}

// openTestDB opens a store in a new directory. Cleanup closes it and checks
// bbolt's consistency.
func openTestDB(t testing.TB, opts Options) (*DB, string, seal.Sealer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s := newSealer(t)
	db, err := Open(dir, s, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		checkConsistent(t, db)
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db, dir, s
}

// checkConsistent runs bbolt's consistency check on an open DB.
func checkConsistent(t testing.TB, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Errorf("bbolt consistency check: %v", err)
	}
}

func put(t testing.TB, db *DB, bucket, key string, value []byte) {
	t.Helper()
	if err := db.Update(context.Background(), func(tx *Tx) error { return tx.Put(bucket, key, value) }); err != nil {
		t.Fatalf("Put(%q, %q): %v", bucket, key, err)
	}
}

func get(t testing.TB, db *DB, bucket, key string) ([]byte, error) {
	t.Helper()
	var v []byte
	err := db.View(context.Background(), func(tx *Tx) error {
		var err error
		v, err = tx.Get(bucket, key)
		return err
	})
	return v, err
}

func TestRoundTrip(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	tests := []struct {
		name, bucket, key string
		value             []byte
	}{
		{"small", "secrets", "token", []byte("s3cr3t")},
		{"empty value", "secrets", "empty", []byte{}},
		{"nil value", "secrets", "nil", nil},
		{"binary key", "b", "\x00\xff key", []byte{0, 1, 2}},
		{"large", "blobs", "one", bytes.Repeat([]byte{0xab}, 1<<20)},
		{"long names", strings.Repeat("b", MaxBucketNameSize), strings.Repeat("k", MaxKeySize), []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			put(t, db, tc.bucket, tc.key, tc.value)
			got, err := get(t, db, tc.bucket, tc.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got == nil || !bytes.Equal(got, tc.value) {
				t.Fatalf("Get = %d bytes (nil %v), want %d bytes", len(got), got == nil, len(tc.value))
			}
		})
	}
	t.Run("overwrite", func(t *testing.T) {
		put(t, db, "secrets", "token", []byte("new"))
		if got, _ := get(t, db, "secrets", "token"); string(got) != "new" {
			t.Fatalf("Get after overwrite = %q, want %q", got, "new")
		}
	})
	t.Run("delete", func(t *testing.T) {
		err := db.Update(t.Context(), func(tx *Tx) error {
			return errors.Join(tx.Delete("secrets", "token"), tx.Delete("secrets", "absent"), tx.Delete("nobucket", "x"))
		})
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := get(t, db, "secrets", "token"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete error = %v, want ErrNotFound", err)
		}
	})
}

func TestGetNotFound(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	put(t, db, "b", "k", []byte("v"))
	for _, tc := range []struct{ bucket, key, wantMsg string }{
		{"b", "other", `bucket "b" key "other"`},
		{"nobucket", "k", `bucket "nobucket"`},
	} {
		_, err := get(t, db, tc.bucket, tc.key)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("Get(%q, %q) error = %v, want ErrNotFound naming %s", tc.bucket, tc.key, err, tc.wantMsg)
		}
	}
}

func TestForEach(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	want := map[string]string{"a": "1", "b": "2", "c": ""}
	for k, v := range want {
		put(t, db, "bucket", k, []byte(v))
	}
	put(t, db, "other", "z", []byte("not listed"))
	var keys []string
	got := map[string]string{}
	err := db.View(t.Context(), func(tx *Tx) error {
		return tx.ForEach("bucket", func(k string, v []byte) error {
			keys = append(keys, k)
			got[k] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("ForEach: %v", err)
	}
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("ForEach keys = %v, want [a b c] in order", keys)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("ForEach value of %q = %q, want %q", k, got[k], v)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err = db.View(t.Context(), func(tx *Tx) error {
		return tx.ForEach("bucket", func(string, []byte) error { calls++; return stop })
	})
	if err != stop || calls != 1 {
		t.Fatalf("ForEach with failing fn = %v after %d calls, want the fn's error after 1", err, calls)
	}
	err = db.View(t.Context(), func(tx *Tx) error {
		return tx.ForEach("missing", func(string, []byte) error { return errors.New("called") })
	})
	if err != nil {
		t.Fatalf("ForEach on a missing bucket: %v", err)
	}
}

func TestNext(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	for want := uint64(1); want <= 3; want++ {
		var got uint64
		err := db.Update(t.Context(), func(tx *Tx) error {
			var err error
			got, err = tx.Next("counters", "activations")
			return err
		})
		if err != nil || got != want {
			t.Fatalf("Next = %d, %v; want %d", got, err, want)
		}
	}
	put(t, db, "counters", "max", binary.BigEndian.AppendUint64(nil, math.MaxUint64))
	put(t, db, "counters", "short", []byte{1, 2})
	for _, tc := range []struct{ key, wantMsg string }{
		{"max", "at its maximum"},
		{"short", "holds 2 bytes, expected 8"},
	} {
		err := db.Update(t.Context(), func(tx *Tx) error { _, err := tx.Next("counters", tc.key); return err })
		if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("Next(%q) error = %v, want it to contain %q", tc.key, err, tc.wantMsg)
		}
	}
}

func TestTxErrors(t *testing.T) {
	db, _, _ := openTestDB(t, Options{MaxValueSize: 10})
	long := strings.Repeat("x", MaxKeySize+1)
	tests := []struct {
		name    string
		view    bool
		fn      func(tx *Tx) error
		wantMsg string
	}{
		{"value too large", false, func(tx *Tx) error { return tx.Put("b", "k", make([]byte, 11)) }, "11 bytes, at most 10"},
		{"empty bucket", false, func(tx *Tx) error { return tx.Put("", "k", nil) }, "bucket name is 0 bytes"},
		{"NUL in bucket", false, func(tx *Tx) error { return tx.Put("a\x00b", "k", nil) }, "contains a NUL byte"},
		{"long bucket", false, func(tx *Tx) error { return tx.Put(long[:MaxBucketNameSize+1], "k", nil) }, "bucket name is 256 bytes"},
		{"empty key", false, func(tx *Tx) error { return tx.Put("b", "", nil) }, "key is 0 bytes"},
		{"long key", false, func(tx *Tx) error { return tx.Put("b", long, nil) }, "key is 1025 bytes"},
		{"get long key", true, func(tx *Tx) error { _, err := tx.Get("b", long); return err }, "key is 1025 bytes"},
		{"ForEach NUL bucket", true, func(tx *Tx) error { return tx.ForEach("\x00cloister", nil) }, "contains a NUL byte"},
		{"Put in View", true, func(tx *Tx) error { return tx.Put("b", "k", nil) }, "Put of bucket \"b\" key \"k\" in a read-only transaction"},
		{"Delete in View", true, func(tx *Tx) error { return tx.Delete("b", "k") }, "read-only transaction"},
		{"Next in View", true, func(tx *Tx) error { _, err := tx.Next("b", "k"); return err }, "read-only transaction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := db.Update
			if tc.view {
				run = db.View
			}
			err := run(t.Context(), tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
	put(t, db, "b", "k", make([]byte, 10)) // exactly the limit
}

func TestUpdateRollsBack(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	boom := errors.New("boom")
	err := db.Update(t.Context(), func(tx *Tx) error {
		if err := tx.Put("b", "k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update error = %v, want fn's error", err)
	}
	if _, err := get(t, db, "b", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after rollback error = %v, want ErrNotFound", err)
	}
}

func TestCanceledContext(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, run := range map[string]func(context.Context, func(*Tx) error) error{
		"View": db.View, "Update": db.Update, "Batch": db.Batch,
	} {
		called := false
		err := run(ctx, func(*Tx) error { called = true; return nil })
		if !errors.Is(err, context.Canceled) || called {
			t.Errorf("%s with a canceled context = %v (fn called %v), want context.Canceled without calling fn", name, err, called)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := newSealer(t)
	db, err := Open(dir, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, "b", "k", []byte("kept"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	db, err = Open(dir, s, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got, err := get(t, db, "b", "k"); err != nil || string(got) != "kept" {
		t.Fatalf("Get after reopen = %q, %v; want %q", got, err, "kept")
	}
}

func TestCreatedFiles(t *testing.T) {
	_, dir, s := openTestDB(t, Options{})
	for _, name := range []string{StateFile, KeyFile, VersionFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("store directory holds %d entries, want only %s, %s and %s", len(entries), StateFile, KeyFile, VersionFile)
	}
	raw, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := parseKeyFile(raw)
	if err != nil {
		t.Fatalf("parseKeyFile: %v", err)
	}
	if kf.Version != 1 || kf.Kind != seal.KindSimulation {
		t.Fatalf("key file version %d kind %q, want 1 and %q", kf.Version, kf.Kind, seal.KindSimulation)
	}
	if !bytes.Contains(raw, []byte(`"sealed":"`)) {
		t.Fatalf("key file %s lacks a base64 sealed field", raw)
	}
	if key, err := s.Unseal(kf.Sealed, []byte(dataKeyAD)); err != nil || len(key) != 32 {
		t.Fatalf("unsealing the data key: %d bytes, %v", len(key), err)
	}
}

func TestLocked(t *testing.T) {
	db, dir, s := openTestDB(t, Options{})
	const timeout = 100 * time.Millisecond
	start := time.Now()
	second, err := Open(dir, s, Options{LockTimeout: timeout})
	if !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited < timeout || waited > timeout+5*time.Second {
		t.Fatalf("second Open returned after %v, want about %v", waited, timeout)
	}
	put(t, db, "b", "k", []byte("still usable"))
}

func TestOptionsErrors(t *testing.T) {
	dir := t.TempDir()
	s := newSealer(t)
	for _, tc := range []struct {
		name    string
		opts    Options
		s       seal.Sealer
		wantMsg string
	}{
		{"negative timeout", Options{LockTimeout: -1}, s, "LockTimeout is -1ns"},
		{"negative max value", Options{MaxValueSize: -1}, s, "MaxValueSize is -1"},
		{"huge max value", Options{MaxValueSize: math.MaxInt32}, s, "MaxValueSize is 2147483647"},
		{"nil sealer", Options{}, nil, "sealer is nil"},
	} {
		_, err := Open(dir, tc.s, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: Open error = %v, want it to contain %q", tc.name, err, tc.wantMsg)
		}
	}
}

func TestConcurrentBatch(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				errs <- db.Batch(t.Context(), func(tx *Tx) error {
					if _, err := tx.Next("counters", "total"); err != nil {
						return err
					}
					return tx.Put("writes", string(rune('A'+g))+"-"+string(rune('a'+i)), []byte{byte(g), byte(i)})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Batch: %v", err)
		}
	}
	// bbolt may run a batch function more than once, but each commit has it
	// exactly once: the counter equals the number of distinct writes.
	var total uint64
	writes := 0
	err := db.View(t.Context(), func(tx *Tx) error {
		v, err := tx.Get("counters", "total")
		if err != nil {
			return err
		}
		total = binary.BigEndian.Uint64(v)
		return tx.ForEach("writes", func(string, []byte) error { writes++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != goroutines*each || writes != goroutines*each {
		t.Fatalf("counter %d and %d writes, want %d of each", total, writes, goroutines*each)
	}
}
