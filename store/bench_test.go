package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.etcd.io/bbolt"
)

// BenchmarkUpdate is one durable commit of one small value.
func BenchmarkUpdate(b *testing.B) {
	db, _, _ := openTestDB(b, Options{})
	value := make([]byte, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := fmt.Sprintf("key-%d", i%1000)
		if err := db.Update(b.Context(), func(tx *Tx) error { return tx.Put("bench", key, value) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch16 is 16 goroutines incrementing a counter and writing a
// small value each through Batch; ns/op is per write.
func BenchmarkBatch16(b *testing.B) {
	db, _, _ := openTestDB(b, Options{})
	value := make([]byte, 100)
	var n atomic.Int64
	b.SetParallelism((16 + 1) / 2) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("key-%d", n.Add(1)%1000)
			err := db.Batch(b.Context(), func(tx *Tx) error {
				if _, err := tx.Next("counters", "activations"); err != nil {
					return err
				}
				return tx.Put("bench", key, value)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGet reads and decrypts one small value.
func BenchmarkGet(b *testing.B) {
	db, _, _ := openTestDB(b, Options{})
	put(b, db, "bench", "key", make([]byte, 100))
	b.ReportAllocs()
	for b.Loop() {
		err := db.View(b.Context(), func(tx *Tx) error {
			_, err := tx.Get("bench", "key")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens and closes a store of 10,000 keys with 100-byte
// values (about 2.5 MB): Open checks every page and authenticates every
// value before bbolt maps the file. "check" is that check alone.
func BenchmarkOpen(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "store")
	s := newSealer(b)
	db, err := Open(dir, s, Options{})
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	for batch := range 10 {
		err := db.Update(b.Context(), func(tx *Tx) error {
			for i := range 1000 {
				if err := tx.Put(fmt.Sprintf("bucket-%d", i%4), fmt.Sprintf("key-%05d", batch*1000+i), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	db.Close()

	b.Run("Open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			db, err := Open(dir, s, Options{})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	b.Run("check", func(b *testing.B) {
		db, err := Open(dir, s, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		var keyID []byte
		db.bolt.View(func(tx *bbolt.Tx) error {
			keyID = bytes.Clone(tx.Bucket([]byte(metaBucket)).Get([]byte(keyIDKey)))
			return nil
		})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.checkState(keyID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
