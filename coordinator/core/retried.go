package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/store"
)

// bucketRecentKeys holds, per limited workload, the keys of its activations of the last
// retryWindow or so, so that a retried activation is not counted twice.
//
// A launcher keeps its key across the retries of one activation (its answer was lost to a
// dropped connection, or the Coordinator replica died after its commit), and the key never
// leaves the enclave that made it: an activation whose quote binds a key counted a moment ago is
// the same enclave instance asking again. It gets a new certificate and uses up no more of
// max_activations. Without this, a workload with max_activations 1 whose only answer was lost
// could never start again. A new enclave instance, a restarted container and a renewal come
// with a new key and count as before; so does a retry later than the window (the limit is
// never exceeded either way).
//
// A key's record is the big-endian window number (4 bytes) and the first 8 bytes of SHA-256 of
// the instance and the key's SubjectPublicKeyInfo, in the entry workload "/" the hash's first hex digit: up to 16
// entries per limited workload, so that a burst of activations reads and writes a sixteenth of
// the records each. Records of windows before the previous one are dropped whenever their
// entry is written, so the entries stay as small as the workload's recent activations (12
// bytes each) and the state does not grow with the number of activations. 64 bits of the hash
// suffice: only the attested launcher chooses the keys, at random, and a chance collision
// would leave one activation uncounted.
const bucketRecentKeys = "recent-activation-keys"

// retryWindow is the length of a window; a key is remembered for one to two windows, well
// beyond a launcher's default retry time (2 minutes).
const retryWindow = 10 * time.Minute

const recentRecordLen = 4 + 8

func recentWindow(now time.Time) uint32 { return uint32(now.Unix() / int64(retryWindow/time.Second)) }

// recent is the entry of one key among a workload's recent activation keys.
type recent struct {
	entry   string  // the store key of the entry the key belongs in
	hash    [8]byte // the key's record, without its window
	window  uint32  // the window now
	records []byte  // the entry's records of this window and the one before
}

// readRecent reads the entry of spki, activating as instance, among workload's recent
// activation keys. The instance is part of the record: a retry is the same request again, and
// an enclave must not use its counted key to activate as other instances uncounted (and get
// their per-instance secrets).
func readRecent(tx *store.Tx, workload, instance string, spki []byte, now time.Time) (*recent, error) {
	h := sha256.New()
	h.Write([]byte("cloister-recent-activation-v1\x00"))
	h.Write([]byte(instance))
	h.Write([]byte{0})
	h.Write(spki)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	r := &recent{entry: fmt.Sprintf("%s/%x", workload, sum[0]>>4), window: recentWindow(now)}
	copy(r.hash[:], sum[:8])
	b, err := tx.Get(bucketRecentKeys, r.entry)
	if errors.Is(err, store.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b)%recentRecordLen != 0 {
		return nil, fmt.Errorf("state %s/%s is corrupt: %d bytes, expected a multiple of %d", bucketRecentKeys, r.entry, len(b), recentRecordLen)
	}
	r.records = make([]byte, 0, len(b)+recentRecordLen)
	for rec := range slices.Chunk(b, recentRecordLen) {
		// This window and the one before; a record from a replica whose clock ran ahead is
		// dropped too, or it would be kept for ever.
		if w := binary.BigEndian.Uint32(rec); w+1 >= r.window && w <= r.window+1 {
			r.records = append(r.records, rec...)
		}
	}
	return r, nil
}

// counted reports whether the key was counted recently.
func (r *recent) counted() bool {
	for rec := range slices.Chunk(r.records, recentRecordLen) {
		if bytes.Equal(rec[4:], r.hash[:]) {
			return true
		}
	}
	return false
}

// record writes the entry with the key added.
func (r *recent) record(tx *store.Tx) error {
	b := binary.BigEndian.AppendUint32(r.records, r.window)
	return tx.Put(bucketRecentKeys, r.entry, append(b, r.hash[:]...))
}
