package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseKeyFile: no panic; an accepted file has version 1, a kind and
// a sealed key, and survives a marshal/parse round trip.
func FuzzParseKeyFile(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"kind":"simulation","sealed":"AQIDBA=="}`,
		`{"version":1,"kind":"simulation","sealed":"AQ==","extra":1}`,
		`{"version":1,"kind":"simulation","sealed":"AQ=="}{}`,
		`{"version":2,"kind":"simulation","sealed":"AQ=="}`,
		`{"version":1,"kind":"","sealed":"AQ=="}`,
		`{"version":1,"kind":"x","sealed":"not base64"}`,
		`null`, ``, `[]`,
	} {
		f.Add([]byte(seed))
	}
	// A real key file, cut and with flipped bytes.
	valid := []byte(`{"version":1,"kind":"simulation","sealed":"AX1kGmSLU0nFq6ngHkZ+cNfwQMa5ZFdmlsQUEtOiQv8nmJz6T9mRv7x7Yq9lX+0Ywq6JXL1dBhGbWQ=="}` + "\n")
	for _, n := range []int{1, 12, 30, 44, len(valid) - 3, len(valid) - 1} {
		f.Add(valid[:n])
	}
	for _, at := range []int{0, 3, 14, 33, 50, len(valid) - 2} {
		b := bytes.Clone(valid)
		b[at] ^= 0xff
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		kf, err := parseKeyFile(raw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "has version") || !strings.Contains(err.Error(), KeyFile) {
				t.Fatalf("parseKeyFile error = %v, want ErrCorrupt (or another version) naming %s", err, KeyFile)
			}
			return
		}
		if kf.Version != keyFileVersion || kf.Kind == "" || len(kf.Sealed) == 0 {
			t.Fatalf("accepted %+v", kf)
		}
		again, err := json.Marshal(kf)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseKeyFile(again)
		if err != nil || back.Kind != kf.Kind || !bytes.Equal(back.Sealed, kf.Sealed) {
			t.Fatalf("round trip of %+v: %+v, %v", kf, back, err)
		}
	})
}

// FuzzOpenValue feeds arbitrary stored bytes to the value decryption: it
// must fail with ErrCorrupt or return exactly what was sealed for that
// bucket and key.
func FuzzOpenValue(f *testing.F) {
	aead, err := newAEAD(bytes.Repeat([]byte{7}, dataKeySize))
	if err != nil {
		f.Fatal(err)
	}
	db := &DB{aead: aead}
	for _, v := range []string{"", "value", string(make([]byte, 300))} {
		sealed := db.seal("bucket", "key", []byte(v))
		f.Add("bucket", "key", sealed)
		f.Add("bucket", "kez", sealed)
		f.Add("bucket", "key", sealed[:len(sealed)-1])
	}
	f.Add("b", "k", []byte{})
	f.Fuzz(func(t *testing.T, bucket, key string, sealed []byte) {
		value, err := db.open(bucket, key, sealed)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || value != nil {
				t.Fatalf("open error %v (value %v), want ErrCorrupt and no value", err, value != nil)
			}
			return
		}
		if len(sealed) != len(value)+valueOverhead {
			t.Fatalf("accepted %d stored bytes for a %d-byte value", len(sealed), len(value))
		}
		back, err := db.open(bucket, key, db.seal(bucket, key, value))
		if err != nil || !bytes.Equal(back, value) {
			t.Fatalf("re-sealed value does not round trip: %v", err)
		}
	})
}

// FuzzOpen writes the fuzzed bytes as state.db beside a valid key file.
// Open must not panic, and either refuse with an error matching ErrCorrupt
// or ErrKeyMismatch that names state.db, or open a store that reads and
// writes without error. The seeds are a small real store and damaged
// copies: each page's type changed, cut at page boundaries, meta pages and
// random bytes changed.
func FuzzOpen(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "store")
	s := newSealer(f)
	db, err := Open(dir, s, Options{})
	if err != nil {
		f.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx *Tx) error {
		for i := range 40 {
			if err := tx.Put("data", fmt.Sprintf("key-%02d", i), bytes.Repeat([]byte{byte(i)}, 90)); err != nil {
				return err
			}
		}
		return errors.Join(tx.Put("big", "blob", bytes.Repeat([]byte("b"), 5000)), tx.Put("small", "k", []byte("v")))
	})
	if err == nil {
		err = db.Update(context.Background(), func(tx *Tx) error { return tx.Delete("data", "key-07") })
	}
	if err != nil {
		f.Fatal(err)
	}
	db.Close()
	key, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		f.Fatal(err)
	}
	state, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		f.Fatal(err)
	}
	anchor, err := os.ReadFile(filepath.Join(dir, VersionFile))
	if err != nil {
		f.Fatal(err)
	}
	const ps = 4096
	f.Add(state)
	for p := 0; p*ps < len(state); p++ {
		b := bytes.Clone(state)
		le.PutUint16(b[p*ps+8:], 0x20)
		f.Add(b)
		f.Add(state[:p*ps])
		b = bytes.Clone(state)
		copy(b[p*ps+p*37%ps:], "\xde\xad\xbe\xef")
		f.Add(b)
	}
	for _, at := range []int{pageHeaderSize + 16, ps + pageHeaderSize + 40} { // root bucket, high-water mark
		b := bytes.Clone(state)
		b[at] ^= 0x01
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, state []byte) {
		dir := filepath.Join(t.TempDir(), "store")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, KeyFile), key)
		writeFile(t, filepath.Join(dir, StateFile), state)
		writeFile(t, filepath.Join(dir, VersionFile), anchor)
		db, err := Open(dir, s, Options{})
		if err != nil {
			// ErrRolledBack: a damaged newer meta page, and bbolt's fallback to the
			// transaction before, which lost an acknowledged commit.
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrKeyMismatch) && !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), StateFile) {
				t.Fatalf("Open error = %v, want ErrCorrupt, ErrKeyMismatch or ErrRolledBack naming %s", err, StateFile)
			}
			return
		}
		defer db.Close()
		if _, err := readAll(db); err != nil {
			t.Fatalf("Open succeeded, then reading: %v", err)
		}
		if err := db.Update(context.Background(), func(tx *Tx) error { return tx.Put("fuzz", "k", []byte("v")) }); err != nil {
			t.Fatalf("Open succeeded, then writing: %v", err)
		}
	})
}
