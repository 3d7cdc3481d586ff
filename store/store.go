package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
)

const (
	// StateFile is the name of the bbolt database in a store directory.
	StateFile = "state.db"
	// KeyFile is the name of the sealed data key file in a store directory.
	KeyFile = "data-key.json"

	// DefaultLockTimeout is how long Open waits for another process to
	// release the directory when Options.LockTimeout is zero.
	DefaultLockTimeout = time.Second
	// DefaultMaxValueSize bounds a value's plaintext size in bytes when
	// Options.MaxValueSize is zero: 16 MiB.
	DefaultMaxValueSize = 16 << 20
	// MaxBucketNameSize bounds bucket names in bytes.
	MaxBucketNameSize = 255
	// MaxKeySize bounds keys in bytes.
	MaxKeySize = 1024
)

var (
	// ErrNotFound is returned (wrapped, with the bucket and key) by Tx.Get
	// when the key or its bucket does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked is returned by Open when another process (or another DB in
	// this process) holds the store directory.
	ErrLocked = errors.New("store: directory is locked by another process")
	// ErrCorrupt is matched by the errors for damaged or tampered state:
	// from a transaction, when a stored value does not decrypt and
	// authenticate under the data key (with the bucket and key), or when
	// bbolt meets a damaged page (the transaction rolls back, and after a
	// write transaction later writes are refused); from Open, when state.db
	// or data-key.json is damaged (with the file, and the page or record).
	ErrCorrupt = errors.New("store: stored value failed authentication (corrupted or tampered)")
	// ErrKeyMismatch is matched by Open's error when data-key.json unseals
	// but holds the data key of another store than state.db's.
	ErrKeyMismatch = errors.New("store: the data key belongs to another store")
)

// Options configures Open. The zero value gives the defaults.
type Options struct {
	// LockTimeout is how long Open waits for the directory lock before
	// returning ErrLocked; zero means DefaultLockTimeout. Negative is an
	// error.
	LockTimeout time.Duration
	// MaxValueSize bounds the plaintext size in bytes of a value given to
	// Tx.Put; zero means DefaultMaxValueSize. Negative or larger than
	// bbolt allows is an error.
	MaxValueSize int
	// Logger receives a line when a store is opened or created, a warning
	// when Open finds a damaged meta page, and an error when a transaction
	// meets a damaged page; nil means no logging. Keys and values are
	// never logged.
	Logger *slog.Logger
	// Keys, for OpenRemote only, is the shelf of data key copies sealed by each replica's seal
	// key, and of the recovery record; nil keeps them in data-key.json only.
	Keys KeyShelf
	// FetchKey, for OpenRemote only, gets the data key from a running peer when this replica's
	// seal key has no copy of it; nil means no peer is asked.
	FetchKey KeyFetcher
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.LockTimeout < 0:
		return o, fmt.Errorf("store: LockTimeout is %v, expected zero (default) or positive", o.LockTimeout)
	case o.MaxValueSize < 0 || o.MaxValueSize > bbolt.MaxValueSize-valueOverhead:
		return o, fmt.Errorf("store: MaxValueSize is %d, expected 0 (default) to %d", o.MaxValueSize, bbolt.MaxValueSize-valueOverhead)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	bolt *bbolt.DB
	file *os.File    // bbolt's state.db, for closeBolt
	aead cipher.AEAD // AES-256-GCM with random nonces under the data key
	// dataKey is the data key itself, for the owner's recovery split
	// (WithDataKey); sealer seals it when the key file is rewritten.
	dataKey      []byte
	sealer       seal.Sealer
	keyMu        sync.Mutex // serializes rewrites of data-key.json (SetRecovery)
	maxValueSize int
	log          *slog.Logger

	// writer is held by the one goroutine in a bbolt write transaction, so
	// that writers wait here (with their context) rather than inside bbolt.
	writer chan struct{}
	batch  batcher
	// failed is the damage the first failed write transaction met; writes
	// are refused once it is set.
	failed    atomic.Pointer[corruptError]
	closeWait time.Duration // see closeBolt

	// versionMu guards version, the state's version as of the last commit (see version.go).
	versionMu sync.Mutex
	version   Version
	// anchorMu guards anchor (the open VersionFile), anchored (the version it holds) and
	// anchorErr (its first write failure).
	anchorMu  sync.Mutex
	anchor    versionAnchor
	anchored  Version
	anchorErr error

	closeOnce sync.Once
	closeErr  error
	root      *os.Root // the store directory
	lock      *os.File // holds the directory lock until Close
	// remote is the shared state of a store opened with OpenRemote (bolt is then nil).
	remote *remoteDB
}

// newAEAD returns the value cipher for a data key.
func newAEAD(dataKey []byte) (cipher.AEAD, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("store: data key is %d bytes, expected %d", len(dataKey), dataKeySize)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, fmt.Errorf("store: creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("store: creating GCM: %w", err)
	}
	return aead, nil
}

// View runs fn in a read-only transaction. It returns ctx's error without
// calling fn if ctx is done, and otherwise fn's error; or an error matching
// ErrCorrupt if bbolt met a damaged page (see Tx).
func (db *DB) View(ctx context.Context, fn func(*Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.remote != nil {
		return db.remoteView(ctx, fn)
	}
	tx := &Tx{db: db}
	defer tx.guard(&err, 0, "read transaction", "", "")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.bolt.View(func(btx *bbolt.Tx) error {
		tx.tx = btx
		return tx.run(fn)
	})
}

// Update runs fn in a read-write transaction and commits it, durably, if
// fn returns nil; otherwise it rolls back and returns fn's error. Writers
// wait for each other; if ctx ends before it is this call's turn, fn is
// not called and ctx's error is returned. If bbolt meets a damaged page
// the transaction rolls back with an error matching ErrCorrupt, and later
// writes are refused with one. A commit that changed the state is recorded
// in VersionFile before Update returns; should that fail, the change stays
// committed but an error matching ErrCorrupt is returned, and later writes
// are refused.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case db.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := func() error {
		defer func() { <-db.writer }() // also when fn panics
		if err := ctx.Err(); err != nil {
			return err
		}
		return db.update(fn)
	}()
	if err != nil {
		return err
	}
	return db.syncVersion()
}

// Close waits for open transactions, closes the database and releases the
// directory lock. Calling it again returns the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.anchorMu.Lock()
		errAnchor := db.anchor.close()
		db.anchorMu.Unlock()
		var errBolt error
		if db.remote != nil {
			db.remote.cancel()
		} else {
			errBolt = db.closeBolt()
		}
		db.closeErr = errors.Join(errBolt, errAnchor, db.lock.Close(), db.root.Close())
		db.keyMu.Lock()
		clear(db.dataKey)
		db.dataKey = nil
		db.keyMu.Unlock()
	})
	return db.closeErr
}
