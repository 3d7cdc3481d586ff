package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
)

// openLive opens a store holding a "data" bucket with its own pages and an
// inline "small" bucket, and returns it with its state.db path and sealer.
func openLive(t *testing.T) (*DB, string, *seal.Simulated) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s := newSealer(t)
	db, err := Open(dir, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(t.Context(), func(tx *Tx) error {
		for i := range 200 {
			if err := tx.Put("data", fmt.Sprintf("key-%03d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		return tx.Put("small", "alpha", []byte("a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, filepath.Join(dir, StateFile), s
}

// setFlags overwrites the flags of page id of the file under an open store,
// which bbolt's shared memory map then sees.
func setFlags(t *testing.T, path string, pageSize int, id uint64, flags uint16) {
	t.Helper()
	b := make([]byte, 2)
	le.PutUint16(b, flags)
	if err := writeAt(path, b, int64(id)*int64(pageSize)+8); err != nil {
		t.Fatal(err)
	}
}

func wantCorrupt(t *testing.T, what string, err error, contains string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), contains) {
		t.Errorf("%s error = %v, want ErrCorrupt containing %q", what, err, contains)
	}
}

// TestDamageWhileOpen damages state.db under an open store: transactions
// that meet the damage fail with ErrCorrupt instead of crashing the
// process; reads elsewhere still work; after a write met damage, writes
// are refused; Close returns.
func TestDamageWhileOpen(t *testing.T) {
	t.Run("branch page", func(t *testing.T) {
		db, path, _ := openLive(t)
		var root uint64
		db.bolt.View(func(tx *bbolt.Tx) error { root = uint64(tx.Bucket([]byte("data")).Root()); return nil })
		setFlags(t, path, db.bolt.Info().PageSize, root, 0x20)

		_, err := get(t, db, "data", "key-001")
		wantCorrupt(t, "Get", err, `reading bucket "data" key "key-001": bbolt failed on damaged data in state.db`)
		err = db.View(t.Context(), func(tx *Tx) error {
			return tx.ForEach("data", func(string, []byte) error { return nil })
		})
		wantCorrupt(t, "ForEach", err, `reading bucket "data"`)
		// A read that drops the error still fails its transaction.
		err = db.View(t.Context(), func(tx *Tx) error { tx.Get("data", "key-002"); return nil })
		wantCorrupt(t, "View dropping Get's error", err, "bbolt failed")
		if v, err := get(t, db, "small", "alpha"); err != nil || string(v) != "a" {
			t.Errorf("Get of an undamaged bucket = %q, %v", v, err)
		}

		err = db.Update(t.Context(), func(tx *Tx) error { return tx.Put("data", "key-001", []byte("new")) })
		wantCorrupt(t, "Update", err, `writing bucket "data" key "key-001"`)
		err = db.Update(t.Context(), func(tx *Tx) error { return tx.Put("small", "beta", []byte("b")) })
		wantCorrupt(t, "Update after a failed write", err, "writes are refused since an earlier write met damaged data")
		err = db.Batch(t.Context(), func(tx *Tx) error { return tx.Put("small", "beta", []byte("b")) })
		wantCorrupt(t, "Batch after a failed write", err, "writes are refused")
		if v, err := get(t, db, "small", "alpha"); err != nil || string(v) != "a" {
			t.Errorf("Get after writes were refused = %q, %v", v, err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	t.Run("file truncated", func(t *testing.T) {
		db, path, _ := openLive(t)
		if err := os.Truncate(path, 2*int64(db.bolt.Info().PageSize)); err != nil {
			t.Fatal(err)
		}
		// The pages are now past the end of the file: bbolt's reads fault.
		_, err := get(t, db, "data", "key-001")
		wantCorrupt(t, "Get", err, "bbolt failed on damaged data")
		err = db.Batch(t.Context(), func(tx *Tx) error { return tx.Put("data", "key-001", []byte("new")) })
		wantCorrupt(t, "Batch", err, "bbolt failed on damaged data")
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	t.Run("a sibling and the freelist page, then a commit", func(t *testing.T) {
		db, path, s := openLive(t)
		db.closeWait = 100 * time.Millisecond
		info := verifyFile(t, path)
		// The first two leaves of "data", from its root branch page.
		var root uint64
		db.bolt.View(func(tx *bbolt.Tx) error { root = uint64(tx.Bucket([]byte("data")).Root()); return nil })
		file, _ := os.ReadFile(path)
		pg := file[root*uint64(info.pageSize):][:info.pageSize]
		leaves, err := elements(nil, pg, int(le.Uint16(pg[10:])), false, false, nil, nil)
		if err != nil || len(leaves) < 3 {
			t.Fatalf("root of data: %d children, %v", len(leaves), err)
		}
		setFlags(t, path, info.pageSize, leaves[0].child, 0x20)
		setFlags(t, path, info.pageSize, info.freelist, 0x20)
		// Emptying the second leaf but for one key makes the commit merge
		// it into the first, which panics; bbolt's rollback then rereads
		// the freelist page, panics again, and keeps its writer lock.
		err = db.Update(t.Context(), func(tx *Tx) error {
			for i := range 200 {
				k := fmt.Sprintf("key-%03d", i)
				if k > string(leaves[1].key) && k < string(leaves[2].key) {
					if err := tx.Delete("data", k); err != nil {
						return err
					}
				}
			}
			return nil
		})
		wantCorrupt(t, "Update", err, "write transaction: bbolt failed on damaged data in state.db")
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err = db.Update(ctx, func(tx *Tx) error { return nil })
		wantCorrupt(t, "the next Update", err, "writes are refused")
		if v, err := get(t, db, "small", "alpha"); err != nil || string(v) != "a" {
			t.Errorf("Get after writes were refused = %q, %v", v, err)
		}
		start := time.Now()
		err = db.Close()
		if err == nil || !strings.Contains(err.Error(), "its file was closed without it") || time.Since(start) > 5*time.Second {
			t.Errorf("Close = %v after %v, want an error after about %v", err, time.Since(start), db.closeWait)
		}
		// The locks are released: Open runs, and finds the damage.
		_, err = Open(filepath.Dir(path), s, Options{LockTimeout: 100 * time.Millisecond})
		wantCorrupt(t, "Open after", err, "expected a freelist page, found flags 0x20")
	})
}

// verifyFile runs verifyState on a file without decrypting values.
func verifyFile(t *testing.T, path string) *stateInfo {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := verifyState(bytes.NewReader(b), int64(len(b)), func(string, []byte, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestCallerPanics checks that a panic in the caller's own function is
// not taken for damage: it propagates unchanged, and the store works on.
func TestCallerPanics(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	put(t, db, "b", "k", []byte("v"))
	recovered := func(f func()) (r any) {
		defer func() { r = recover() }()
		f()
		return nil
	}
	for name, run := range map[string]func(){
		"View": func() { db.View(t.Context(), func(*Tx) error { panic("boom") }) },
		"Update": func() {
			db.Update(t.Context(), func(tx *Tx) error { tx.Put("b", "k", []byte("changed")); panic("boom") })
		},
		"ForEach": func() {
			db.View(t.Context(), func(tx *Tx) error {
				return tx.ForEach("b", func(string, []byte) error { panic("boom") })
			})
		},
		"ForEach in Update": func() {
			db.Update(t.Context(), func(tx *Tx) error {
				return tx.ForEach("b", func(string, []byte) error { panic("boom") })
			})
		},
	} {
		if r := recovered(run); r != "boom" {
			t.Errorf("%s: recovered %v, want the caller's panic %q", name, r, "boom")
		}
	}
	put(t, db, "b", "k2", []byte("still writable"))
	if v, err := get(t, db, "b", "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after the panics = %q, %v; want the value before the panicking Update", v, err)
	}
}
