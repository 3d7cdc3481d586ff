package store

import (
	"fmt"
	"sync/atomic"
	"testing"
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
