package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
)

// snapshot returns every file in dir by name with its contents.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			files[e.Name()+"/"] = nil
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// newStoreDir creates a store with some data in a new directory, closes it
// and returns the directory and its sealer.
func newStoreDir(t *testing.T, s seal.Sealer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	db, err := Open(dir, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(t.Context(), func(tx *Tx) error {
		for i := range 300 { // many pages, so that truncation cuts data
			if err := tx.Put("data", fmt.Sprintf("key-%03d", i), bytes.Repeat([]byte{byte(i)}, 500)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFailuresLeaveFilesUnchanged(t *testing.T) {
	s := newSealer(t)
	otherStore := newStoreDir(t, s) // same sealer, different data key
	gramineKey := filepath.Join(t.TempDir(), "_sgx_mrsigner")
	writeFile(t, gramineKey, make([]byte, seal.GramineRawKeySize))
	gramine, err := seal.NewGramine(gramineKey)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64<<10)
	rand.Read(garbage)

	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		sealer  seal.Sealer
		wantMsg string
	}{
		{"wrong sealer key", nil, newSealer(t), "cannot be unsealed by this \"simulation\" sealer"},
		{"different sealer kind", nil, gramine, `sealed by a "simulation" sealer, but this process uses "sgx-mrsigner"`},
		{"key file missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, KeyFile))
		}, s, "state.db exists but data-key.json is missing"},
		{"key file of another store", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(otherStore, KeyFile))
			writeFile(t, filepath.Join(dir, KeyFile), b)
		}, s, "the two files belong to different stores"},
		{"key file not JSON", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, KeyFile), []byte("not json"))
		}, s, "data-key.json is not valid"},
		{"key file unknown field", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, KeyFile), []byte(`{"version":1,"kind":"simulation","sealed":"AQ==","extra":1}`))
		}, s, `unknown field "extra"`},
		{"key file trailing data", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, KeyFile))
			writeFile(t, filepath.Join(dir, KeyFile), append(b, "{}"...))
		}, s, "data after its JSON object"},
		{"key file version 2", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, KeyFile), []byte(`{"version":2,"kind":"simulation","sealed":"AQ=="}`))
		}, s, "version 2, expected 1"},
		{"key file too large", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, KeyFile), bytes.Repeat([]byte(" "), maxKeyFileSize+1))
		}, s, "larger than 262144 bytes"},
		{"state garbage", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, StateFile), garbage)
		}, s, "not a usable bbolt database"},
		{"state truncated", func(t *testing.T, dir string) {
			path := filepath.Join(dir, StateFile)
			b, _ := os.ReadFile(path)
			writeFile(t, path, b[:len(b)/2])
		}, s, "state.db is truncated"},
		{"state shorter than two pages", func(t *testing.T, dir string) {
			path := filepath.Join(dir, StateFile)
			b, _ := os.ReadFile(path)
			writeFile(t, path, b[:100])
		}, s, "not a usable bbolt database"},
		{"state empty", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, StateFile), nil)
		}, s, "state.db is empty (0 bytes)"},
		{"state without check record", func(t *testing.T, dir string) {
			path := filepath.Join(dir, StateFile)
			os.Remove(path)
			bdb, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			bdb.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("data")); return err })
			bdb.Close()
		}, s, "has no check record"},
		{"state is a directory", func(t *testing.T, dir string) {
			path := filepath.Join(dir, StateFile)
			os.Remove(path)
			os.Mkdir(path, 0o700)
		}, s, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newStoreDir(t, s)
			if tc.damage != nil {
				tc.damage(t, dir)
			}
			before := snapshot(t, dir)
			db, err := Open(dir, tc.sealer, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.wantMsg)
			}
			if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Fatalf("Open changed the directory: %d files before, %d after", len(before), len(after))
			}
		})
	}
}

// TestKeyFileWithoutState covers a first start interrupted after the key
// file was written: the key is reused, never replaced.
func TestKeyFileWithoutState(t *testing.T) {
	s := newSealer(t)
	dir := newStoreDir(t, s)
	key, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	os.Remove(filepath.Join(dir, StateFile))
	os.Remove(filepath.Join(dir, VersionFile)) // written after state.db: an interrupted start has none
	var logs bytes.Buffer
	db, err := Open(dir, s, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"store: data-key.json exists without state.db") {
		t.Errorf("logs lack the warning about a key file without state:\n%s", logs.String())
	}
	put(t, db, "b", "k", []byte("v"))
	db.Close()
	if after, _ := os.ReadFile(filepath.Join(dir, KeyFile)); !bytes.Equal(after, key) {
		t.Fatal("the existing key file was replaced")
	}

	// With a key file this sealer cannot open, nothing is created.
	os.Remove(filepath.Join(dir, StateFile))
	before := snapshot(t, dir)
	if db, err := Open(dir, newSealer(t), Options{}); err == nil {
		db.Close()
		t.Fatal("Open with a foreign key file and no state succeeded")
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("Open changed the directory")
	}
}

// TestFlippedValueOnDisk flips a bit of a stored value in every copy on
// disk. Open refuses the file, naming the bucket and key; on a store that
// is already open, reading that value fails the same way and other values
// still read.
func TestFlippedValueOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := newSealer(t)
	db, err := Open(dir, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 64)
	rand.Read(value)
	err = db.Update(t.Context(), func(tx *Tx) error {
		return errors.Join(tx.Put("secrets", "token", value), tx.Put("secrets", "other", []byte("fine")))
	})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	db.bolt.View(func(tx *bbolt.Tx) error {
		raw = bytes.Clone(tx.Bucket([]byte("secrets")).Get([]byte("token")))
		return nil
	})

	path := filepath.Join(dir, StateFile)
	file, _ := os.ReadFile(path)
	// Flip a bit in every copy: copy-on-write may leave stale pages.
	if bytes.Count(file, raw) == 0 {
		t.Fatal("the stored ciphertext is not in the file")
	}
	for at := bytes.Index(file, raw); at >= 0; at = bytes.Index(file, raw) {
		file[at+len(raw)/2] ^= 0x01
	}
	// Write in place: bbolt's shared memory map sees the change.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(file, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = get(t, db, "secrets", "token")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `bucket "secrets" key "token"`) {
		t.Fatalf("Get of a flipped value error = %v, want ErrCorrupt naming the bucket and key", err)
	}
	if got, err := get(t, db, "secrets", "other"); err != nil || string(got) != "fine" {
		t.Fatalf("Get of an intact value = %q, %v", got, err)
	}
	err = db.View(t.Context(), func(tx *Tx) error {
		return tx.ForEach("secrets", func(string, []byte) error { return nil })
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ForEach over a flipped value error = %v, want ErrCorrupt", err)
	}
	db.Close()

	before := snapshot(t, dir)
	db, err = Open(dir, s, Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open of a store with a flipped value succeeded")
	}
	want := `state.db is corrupt: stored value failed authentication (corrupted or tampered): bucket "secrets" key "token"`
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open error = %v, want ErrCorrupt containing %q", err, want)
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("Open changed the directory")
	}
}

// TestMovedValue checks that the additional data binds a value to its
// bucket and key.
func TestMovedValue(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	put(t, db, "secrets", "a", []byte("value of a"))
	tests := []struct {
		name        string
		bucket, key string
		raw         func([]byte) []byte
	}{
		{"to another key", "secrets", "b", bytes.Clone},
		{"to another bucket", "public", "a", bytes.Clone},
		{"truncated", "secrets", "c", func(b []byte) []byte { return b[:valueOverhead-1] }},
		{"unknown version", "secrets", "d", func(b []byte) []byte { c := bytes.Clone(b); c[0] = 2; return c }},
	}
	var raw []byte
	db.bolt.View(func(tx *bbolt.Tx) error {
		raw = bytes.Clone(tx.Bucket([]byte("secrets")).Get([]byte("a")))
		return nil
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.bolt.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte(tc.bucket))
				if err != nil {
					return err
				}
				return b.Put([]byte(tc.key), tc.raw(raw))
			})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("bucket %q key %q", tc.bucket, tc.key)
			if _, err := get(t, db, tc.bucket, tc.key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Get error = %v, want ErrCorrupt naming %s", err, want)
			}
		})
	}
}

// TestKeyFileDamaged flips every byte of data-key.json (two ways) and cuts
// it at every length. Open never panics, and either refuses with an error
// naming data-key.json, leaving the files as they were, or opens (JSON
// accepts some changes, such as the case of a field name) with the data
// intact.
func TestKeyFileDamaged(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	dir := newStoreDir(t, s)
	path := filepath.Join(dir, KeyFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		name string
		file []byte
	}
	add := func(name string, b []byte) {
		cases = append(cases, struct {
			name string
			file []byte
		}{name, b})
	}
	for i := range orig {
		for _, x := range []byte{0x01, 0xff} {
			b := bytes.Clone(orig)
			b[i] ^= x
			add(fmt.Sprintf("byte %d ^ 0x%02x", i, x), b)
		}
	}
	for n := range len(orig) {
		add(fmt.Sprintf("cut to %d bytes", n), orig[:n])
	}
	opened, corrupt := 0, 0
	for _, tc := range cases {
		writeFile(t, path, tc.file)
		before := snapshot(t, dir)
		db, err := Open(dir, s, Options{})
		if err != nil {
			if !strings.Contains(err.Error(), KeyFile) {
				t.Errorf("%s: Open error = %v, want it to name %s", tc.name, err, KeyFile)
			}
			if errors.Is(err, ErrCorrupt) {
				corrupt++
			}
			if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Errorf("%s: Open changed the directory", tc.name)
			}
			continue
		}
		opened++
		got, err := readAll(db)
		db.Close()
		if err != nil || len(got["data"]) != 300 {
			t.Errorf("%s: Open succeeded, then reading: %d values, %v", tc.name, len(got["data"]), err)
		}
	}
	t.Logf("%d cases: %d opened, %d refused as ErrCorrupt, %d refused otherwise (the sealed key does not authenticate, or the kind or version differs)", len(cases), opened, corrupt, len(cases)-opened-corrupt)
}
