package store

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
)

const (
	// valueVersion is the first byte of every stored value.
	valueVersion = 1
	// valueOverhead is version + nonce + tag.
	valueOverhead = 1 + 12 + 16
	// adPrefix starts the additional data of every stored value.
	adPrefix = "cloister-store-v1\x00"
)

// Tx is a transaction passed to the functions given to DB.View, DB.Update
// and DB.Batch. It must not be used after that function returns, nor from
// other goroutines while it runs.
//
// A method that meets a damaged page returns an error matching ErrCorrupt
// instead of letting bbolt panic, and the transaction then fails with that
// error even if the function drops it: it rolls back.
type Tx struct {
	db       *DB
	tx       *bbolt.Tx
	writable bool
	depth    int   // caller functions running (see guard)
	failed   error // the first damage met, if any
	// writes hashes the changes of a write transaction (see version.go); nil while none.
	writes hash.Hash
	// rtx is the transaction's state on a shared state (see remote.go); tx is then nil.
	rtx *remoteTx
}

// Get returns the decrypted value of key in bucket, a fresh slice the
// caller owns. It returns an error wrapping ErrNotFound if the bucket or
// key does not exist, and one wrapping ErrCorrupt if the stored value does
// not authenticate.
func (tx *Tx) Get(bucket, key string) (_ []byte, err error) {
	if err := checkNames(bucket, key); err != nil {
		return nil, err
	}
	if tx.rtx != nil {
		sealed, ok := tx.rtx.get(bucket, key)
		if !ok {
			return nil, fmt.Errorf("%w: bucket %q key %q", ErrNotFound, bucket, key)
		}
		return tx.db.open(bucket, key, sealed)
	}
	defer tx.guard(&err, tx.depth, "reading", bucket, key)
	b := tx.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, bucket)
	}
	sealed := b.Get([]byte(key))
	if sealed == nil {
		return nil, fmt.Errorf("%w: bucket %q key %q", ErrNotFound, bucket, key)
	}
	return tx.db.open(bucket, key, sealed)
}

// Put encrypts value and stores it under key in bucket, creating the
// bucket if needed. value may be empty but at most Options.MaxValueSize
// bytes. Put fails in a read-only transaction.
func (tx *Tx) Put(bucket, key string, value []byte) (err error) {
	if err := tx.checkWritable("Put", bucket, key); err != nil {
		return err
	}
	defer tx.guard(&err, tx.depth, "writing", bucket, key)
	if len(value) > tx.db.maxValueSize {
		return fmt.Errorf("store: value for bucket %q key %q is %d bytes, at most %d allowed", bucket, key, len(value), tx.db.maxValueSize)
	}
	if tx.rtx != nil {
		sealed := tx.db.seal(bucket, key, value)
		tx.rtx.set(bucket, key, sealed)
		tx.noteWrite('P', bucket, key, sealed)
		return nil
	}
	b, err := tx.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("store: creating bucket %q: %w", bucket, err)
	}
	sealed := tx.db.seal(bucket, key, value)
	if err := b.Put([]byte(key), sealed); err != nil {
		return fmt.Errorf("store: writing bucket %q key %q: %w", bucket, key, err)
	}
	tx.noteWrite('P', bucket, key, sealed)
	return nil
}

// Delete removes key from bucket. Deleting a key or bucket that does not
// exist is not an error. Delete fails in a read-only transaction.
func (tx *Tx) Delete(bucket, key string) (err error) {
	if err := tx.checkWritable("Delete", bucket, key); err != nil {
		return err
	}
	if tx.rtx != nil {
		if _, ok := tx.rtx.get(bucket, key); ok {
			tx.rtx.set(bucket, key, nil)
			tx.noteWrite('D', bucket, key, nil)
		}
		return nil
	}
	defer tx.guard(&err, tx.depth, "deleting", bucket, key)
	b := tx.tx.Bucket([]byte(bucket))
	if b == nil || b.Get([]byte(key)) == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: deleting bucket %q key %q: %w", bucket, key, err)
	}
	tx.noteWrite('D', bucket, key, nil)
	return nil
}

// ForEach calls fn for every key of bucket in byte order with its
// decrypted value (a fresh slice fn may keep). A missing bucket has no
// keys. It stops at the first error, from fn (returned as is) or from
// decryption (wrapping ErrCorrupt). fn must not modify the bucket.
func (tx *Tx) ForEach(bucket string, fn func(key string, value []byte) error) (err error) {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if tx.rtx != nil {
		for _, key := range tx.rtx.keys(bucket) {
			sealed, _ := tx.rtx.get(bucket, key)
			value, err := tx.db.open(bucket, key, sealed)
			if err != nil {
				return err
			}
			tx.depth++
			err = fn(key, value)
			tx.depth--
			if err != nil {
				return err
			}
		}
		return nil
	}
	defer tx.guard(&err, tx.depth, "reading", bucket, "")
	b := tx.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, sealed []byte) error {
		key := string(k)
		if sealed == nil {
			return fmt.Errorf("%w: bucket %q key %q is a nested bucket, expected a value", ErrCorrupt, bucket, key)
		}
		value, err := tx.db.open(bucket, key, sealed)
		if err != nil {
			return err
		}
		tx.depth++
		err = fn(key, value)
		tx.depth--
		return err
	})
}

// Next increments the durable counter stored under key in bucket and
// returns its new value: 1 the first time. The counter is an encrypted
// 8-byte big-endian value like any other. Next fails in a read-only
// transaction, on a value that is not a counter, and at math.MaxUint64.
func (tx *Tx) Next(bucket, key string) (uint64, error) {
	var n uint64
	switch v, err := tx.Get(bucket, key); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return 0, err
	case len(v) != 8:
		return 0, fmt.Errorf("store: counter bucket %q key %q holds %d bytes, expected 8", bucket, key, len(v))
	default:
		n = binary.BigEndian.Uint64(v)
	}
	if n == math.MaxUint64 {
		return 0, fmt.Errorf("store: counter bucket %q key %q is at its maximum", bucket, key)
	}
	n++
	if err := tx.Put(bucket, key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return 0, err
	}
	return n, nil
}

func (tx *Tx) checkWritable(op, bucket, key string) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if !tx.writable {
		return fmt.Errorf("store: %s of bucket %q key %q in a read-only transaction; use Update or Batch", op, bucket, key)
	}
	return nil
}

// checkNames validates user bucket and key names. Bucket names may not
// contain NUL, which keeps the additional data unambiguous and the
// internal bucket (which starts with NUL) out of reach.
func checkNames(bucket, key string) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if key == "" || len(key) > MaxKeySize {
		return fmt.Errorf("store: key is %d bytes, expected 1 to %d", len(key), MaxKeySize)
	}
	return nil
}

func checkBucket(bucket string) error {
	if bucket == "" || len(bucket) > MaxBucketNameSize {
		return fmt.Errorf("store: bucket name is %d bytes, expected 1 to %d", len(bucket), MaxBucketNameSize)
	}
	if strings.IndexByte(bucket, 0) >= 0 {
		return fmt.Errorf("store: bucket name %q contains a NUL byte", bucket)
	}
	return nil
}

// seal encrypts a value for bucket and key.
func (db *DB) seal(bucket, key string, value []byte) []byte {
	return sealValue(db.aead, bucket, key, value)
}

func sealValue(aead cipher.AEAD, bucket, key string, value []byte) []byte {
	out := make([]byte, 1, valueOverhead+len(value))
	out[0] = valueVersion
	return aead.Seal(out, nil, value, additionalData(bucket, key))
}

// open decrypts a stored value of bucket and key.
func (db *DB) open(bucket, key string, sealed []byte) ([]byte, error) {
	value, _, err := openAppend(db.aead, nil, nil, bucket, key, sealed)
	if err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// openAppend is open appending the value to dst, with ad's space reused
// for the additional data; it returns that space for reuse too.
func openAppend[K string | []byte](aead cipher.AEAD, dst, ad []byte, bucket string, key K, sealed []byte) (value, adSpace []byte, err error) {
	if len(sealed) < valueOverhead || sealed[0] != valueVersion {
		return nil, ad, fmt.Errorf("%w: bucket %q key %q: %d-byte value is not in the stored format", ErrCorrupt, bucket, key, len(sealed))
	}
	ad = appendAD(ad[:0], bucket, key)
	value, err = aead.Open(dst, nil, sealed[1:], ad)
	if err != nil {
		return nil, ad, fmt.Errorf("%w: bucket %q key %q", ErrCorrupt, bucket, key)
	}
	return value, ad, nil
}

func additionalData(bucket, key string) []byte { return appendAD(nil, bucket, key) }

func appendAD[K string | []byte](ad []byte, bucket string, key K) []byte {
	ad = slices.Grow(ad, len(adPrefix)+len(bucket)+1+len(key))
	ad = append(ad, adPrefix...)
	ad = append(ad, bucket...)
	ad = append(ad, 0)
	return append(ad, key...)
}
