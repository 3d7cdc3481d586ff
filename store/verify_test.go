package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVerifyAcceptsValidStores guards against the other failure: refusing
// a sound store. Random workloads (values from empty to several pages,
// keys up to MaxKeySize so that branch pages overflow, deletes that empty
// buckets and merge pages, Update and Batch) are checked by verifyState
// after every commit, by bbolt's own check at the end, and reopened.
func TestVerifyAcceptsValidStores(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 42))
			db, dir, s := openTestDB(t, Options{})
			path := filepath.Join(dir, StateFile)
			want := contents{}
			randKey := func() string {
				n := 1 + rng.IntN(12)
				if rng.IntN(10) == 0 {
					n = 1 + rng.IntN(MaxKeySize)
				}
				b := make([]byte, n)
				for i := range b {
					b[i] = "abcdefgh"[rng.IntN(8)]
				}
				return string(b)
			}
			randValue := func() string {
				var n int
				switch r := rng.IntN(100); {
				case r < 70:
					n = rng.IntN(300)
				case r < 90:
					n = 300 + rng.IntN(3000)
				case r < 98:
					n = 3000 + rng.IntN(9000)
				default:
					n = 20000 + rng.IntN(50000)
				}
				return strings.Repeat(string(rune('A'+rng.IntN(26))), n)
			}
			buckets := []string{"a", "b", "c", "secrets", "counters", "x/y"}
			for round := range 120 {
				next := want.clone()
				fn := func(tx *Tx) error {
					for range 1 + rng.IntN(40) {
						b := buckets[rng.IntN(len(buckets))]
						switch r := rng.IntN(100); {
						case r < 60:
							k, v := randKey(), randValue()
							next.put(b, k, v)
							if err := tx.Put(b, k, []byte(v)); err != nil {
								return err
							}
						case r < 95:
							keys := slices.Sorted(func(yield func(string) bool) {
								for k := range next[b] {
									if !yield(k) {
										return
									}
								}
							})
							if len(keys) == 0 {
								continue
							}
							k := keys[rng.IntN(len(keys))]
							delete(next[b], k)
							if err := tx.Delete(b, k); err != nil {
								return err
							}
						default: // empty the bucket
							for k := range next[b] {
								delete(next[b], k)
								if err := tx.Delete(b, k); err != nil {
									return err
								}
							}
						}
					}
					return nil
				}
				var err error
				if round%3 == 0 {
					err = db.Batch(t.Context(), fn)
				} else {
					err = db.Update(t.Context(), fn)
				}
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				want = next
				checkFile(t, db, path, fmt.Sprintf("round %d", round))
			}
			checkConsistent(t, db)
			db.Close()
			db, err := Open(dir, s, Options{})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer db.Close()
			got, err := readAll(db)
			if err != nil {
				t.Fatal(err)
			}
			for b, kv := range want {
				if len(kv) == 0 {
					delete(want, b)
				}
			}
			for b, kv := range got {
				if len(kv) == 0 {
					delete(got, b)
				}
			}
			if !got.equal(want) {
				t.Fatal("reopened store differs from what was written")
			}
		})
	}
}

// checkFile runs verifyState on the file of the open db, between commits.
func checkFile(t *testing.T, db *DB, path, when string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	info, err := verifyState(f, fi.Size(), func(bucket string, key, sealed []byte) error {
		_, err := db.open(bucket, string(key), sealed)
		return err
	})
	switch {
	case err != nil:
		t.Fatalf("%s: verifyState of a sound store: %v", when, err)
	case info.valueErr != nil:
		t.Fatalf("%s: verifyState of a sound store: %v", when, info.valueErr)
	case len(info.warnings) > 0:
		t.Fatalf("%s: verifyState of a sound store warns: %q", when, info.warnings)
	case info.check == nil || info.keyID == nil:
		t.Fatalf("%s: verifyState found no check record or key ID", when)
	}
	if err := db.matchKey(info, keyIDRecord(nil)); err == nil {
		t.Fatalf("%s: matchKey accepted another key ID with an intact check record", when)
	}
}

// TestCheckRecordDamage is the misreport: a damaged check record used to
// be reported as "the two files belong to different stores". Now the key
// ID, or the other values, show that the key is right and the file is
// damaged; only another store's key file gives ErrKeyMismatch.
func TestCheckRecordDamage(t *testing.T) {
	s := newSealer(t)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
		wantIs error
	}{
		{"check record flipped", func(t *testing.T, dir string) {
			flipRecord(t, dir, checkKey, 20)
		}, "its check record does not authenticate, although the key in data-key.json has the key ID recorded in state.db", ErrCorrupt},
		{"key ID record flipped", func(t *testing.T, dir string) {
			flipRecord(t, dir, keyIDKey, 3)
		}, "its key ID record (20 bytes) fails its checksum, although the check record authenticates", ErrCorrupt},
		{"check record and key ID flipped, other values intact", func(t *testing.T, dir string) {
			flipRecord(t, dir, checkKey, 20)
			flipRecord(t, dir, keyIDKey, 3)
		}, "its check record does not authenticate, although other values authenticate under the key in data-key.json", ErrCorrupt},
		{"key file of another store", func(t *testing.T, dir string) {
			other := newStoreDir(t, s)
			b, _ := os.ReadFile(filepath.Join(other, KeyFile))
			writeFile(t, filepath.Join(dir, KeyFile), b)
		}, "the two files belong to different stores; both were left unchanged (state.db was made with key ID", ErrKeyMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newStoreDir(t, s)
			tc.damage(t, dir)
			before := snapshot(t, dir)
			db, err := Open(dir, s, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want %v containing %q", err, tc.wantIs, tc.want)
			}
			if errors.Is(err, ErrCorrupt) == errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("Open error = %v matches both or neither of ErrCorrupt and ErrKeyMismatch", err)
			}
			if after := snapshot(t, dir); !equalFiles(before, after) {
				t.Fatal("Open changed the directory")
			}
		})
	}
}

// TestStoreWithoutKeyID covers stores made before key IDs: Open records
// the key's ID once the check record proves the key; until then, the
// other values tell a damaged check record from another store's key file.
func TestStoreWithoutKeyID(t *testing.T) {
	s := newSealer(t)
	withoutKeyID := func(t *testing.T) string {
		dir := newStoreDir(t, s)
		db, err := Open(dir, s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.update(func(tx *Tx) error { return tx.tx.Bucket([]byte(metaBucket)).Delete([]byte(keyIDKey)) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		return dir
	}

	t.Run("recorded on open", func(t *testing.T) {
		dir := withoutKeyID(t)
		db, err := Open(dir, s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkFile(t, db, filepath.Join(dir, StateFile), "after Open")
	})
	t.Run("check record flipped", func(t *testing.T) {
		dir := withoutKeyID(t)
		flipRecord(t, dir, checkKey, 20)
		_, err := Open(dir, s, Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "other values authenticate") {
			t.Fatalf("Open error = %v, want ErrCorrupt saying other values authenticate", err)
		}
	})
	t.Run("key file of another store", func(t *testing.T) {
		dir := withoutKeyID(t)
		other := newStoreDir(t, s)
		b, _ := os.ReadFile(filepath.Join(other, KeyFile))
		writeFile(t, filepath.Join(dir, KeyFile), b)
		_, err := Open(dir, s, Options{})
		if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "the two files belong to different stores") {
			t.Fatalf("Open error = %v, want ErrKeyMismatch", err)
		}
	})
}

// flipRecord flips byte at of the internal bucket's record key in every
// copy in state.db.
func flipRecord(t *testing.T, dir, key string, at int) {
	t.Helper()
	path := filepath.Join(dir, StateFile)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The record's value follows its key in the inline bucket's leaf.
	n := 0
	for i := bytes.Index(file, []byte(key)); i >= 0; {
		if v := i + len(key) + at; v < len(file) {
			file[v] ^= 0xff
			n++
		}
		j := bytes.Index(file[i+1:], []byte(key))
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if n == 0 {
		t.Fatalf("%s does not hold %q", StateFile, key)
	}
	writeFile(t, path, file)
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
