package store

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

const (
	// metaBucket holds the check record. User bucket names cannot contain
	// NUL, so they never collide with it.
	metaBucket = "\x00cloister"
	checkKey   = "check"
	checkValue = "cloister-store-v1 check record"

	// stateTemp is where a new state.db is built before it is renamed.
	stateTemp = ".state.db.tmp"
)

// Open opens the store in dir, creating dir (mode 0700) and a new store in
// it if it holds neither state.db nor data-key.json. s seals the data key.
//
// If state.db exists, data-key.json must exist, be sealed by a sealer of
// the same Kind, unseal with s, and decrypt state.db's check record; and
// state.db must be a complete bbolt file. Otherwise Open returns an error
// that says which, and writes nothing. If only data-key.json exists (a
// first start was interrupted), its key is reused for a new empty state.db.
//
// Open returns an error wrapping ErrLocked if the directory stays locked by
// another DB for opts.LockTimeout.
func Open(dir string, s seal.Sealer, opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("store: sealer is nil")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("store: opening directory: %w", err)
	}
	lock, err := lockDir(root, opts.LockTimeout)
	if err != nil {
		root.Close()
		return nil, err
	}
	db, err := openLocked(root, s, opts)
	if err != nil {
		lock.Close()
		root.Close()
		return nil, err
	}
	db.lock = lock
	return db, nil
}

// openLocked does Open's work while the directory lock is held.
func openLocked(root *os.Root, s seal.Sealer, opts Options) (*DB, error) {
	log := opts.Logger.With("dir", root.Name(), "sealer", s.Kind())
	aead, created, err := loadOrCreate(root, s, opts, log)
	if err != nil {
		return nil, err
	}
	db := &DB{aead: aead, maxValueSize: opts.MaxValueSize, root: root}
	if err := db.checkState(opts); err != nil {
		return nil, err
	}
	if db.bolt, err = bbolt.Open(StateFile, 0o600, boltOptions(root, opts, false)); err != nil {
		return nil, boltOpenError(err, opts)
	}
	log.Info("store: opened", "created", created)
	return db, nil
}

// loadOrCreate returns the value cipher under the store's data key. If
// root has no state.db it first creates one, and a data key if there is
// none either; created reports that.
func loadOrCreate(root *os.Root, s seal.Sealer, opts Options, log *slog.Logger) (aead cipher.AEAD, created bool, err error) {
	_, err = root.Lstat(StateFile)
	stateExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	key, err := readDataKey(root, s)
	switch {
	case errors.Is(err, fs.ErrNotExist) && stateExists:
		return nil, false, fmt.Errorf("store: %s exists but %s is missing; restore %s from a backup (a new one cannot decrypt the existing state)", StateFile, KeyFile, KeyFile)
	case errors.Is(err, fs.ErrNotExist):
		if key, err = createDataKey(root, s); err != nil {
			return nil, false, err
		}
	case err != nil:
		return nil, false, err
	case !stateExists:
		log.Warn("store: " + KeyFile + " exists without " + StateFile + "; creating an empty " + StateFile + " under the existing key")
	}
	aead, err = newAEAD(key)
	clear(key)
	if err != nil {
		return nil, false, err
	}
	if !stateExists {
		if err := createState(root, aead, opts); err != nil {
			return nil, false, err
		}
	}
	return aead, !stateExists, nil
}

// boltOptions opens bbolt's file through root, so that state.db cannot be
// a link out of the store directory.
func boltOptions(root *os.Root, opts Options, readOnly bool) *bbolt.Options {
	return &bbolt.Options{
		Timeout:  opts.LockTimeout,
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return root.OpenFile(name, flag, perm)
		},
	}
}

func boltOpenError(err error, opts Options) error {
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w: %s is held by another program (waited %v)", ErrLocked, StateFile, opts.LockTimeout)
	}
	return fmt.Errorf("store: %s is not a usable bbolt database; it was left unchanged: %w", StateFile, err)
}

// checkState opens state.db read-only, so that nothing can be written, and
// checks that the file is as long as its header says and that the data key
// decrypts the check record. Memory faults and bbolt panics on a damaged
// file become errors.
func (db *DB) checkState(opts Options) (err error) {
	fi, err := db.root.Stat(StateFile)
	switch {
	case err != nil:
		return fmt.Errorf("store: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("store: %s is not a regular file (mode %s)", StateFile, fi.Mode())
	case fi.Size() == 0:
		return fmt.Errorf("store: %s is empty (0 bytes), expected a bbolt database; it was left unchanged", StateFile)
	}
	bdb, err := bbolt.Open(StateFile, 0o600, boltOptions(db.root, opts, true))
	if err != nil {
		return boltOpenError(err, opts)
	}
	defer bdb.Close()

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: %s is corrupted (%v); it was left unchanged", StateFile, r)
		}
	}()
	return bdb.View(func(tx *bbolt.Tx) error {
		// Check the length first: reading a page past the end of the
		// mapped file would fault.
		if tx.Size() > fi.Size() {
			return fmt.Errorf("store: %s is truncated: %d bytes, its header says at least %d; it was left unchanged", StateFile, fi.Size(), tx.Size())
		}
		b := tx.Bucket([]byte(metaBucket))
		var sealed []byte
		if b != nil {
			sealed = b.Get([]byte(checkKey))
		}
		if sealed == nil {
			return fmt.Errorf("store: %s has no check record: it is not a Cloister store; it was left unchanged", StateFile)
		}
		value, err := db.open(metaBucket, checkKey, sealed)
		if err != nil || !bytes.Equal(value, []byte(checkValue)) {
			return fmt.Errorf("store: the data key in %s does not decrypt %s's check record: the two files belong to different stores; both were left unchanged", KeyFile, StateFile)
		}
		return nil
	})
}

// createState builds a new state.db holding only the check record under a
// temporary name, then renames it into place and syncs the directory.
func createState(root *os.Root, aead cipher.AEAD, opts Options) error {
	if err := root.Remove(stateTemp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: removing a stale %s: %w", stateTemp, err)
	}
	bdb, err := bbolt.Open(stateTemp, 0o600, boltOptions(root, opts, false))
	if err != nil {
		return fmt.Errorf("store: creating %s: %w", stateTemp, err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(metaBucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(checkKey), sealValue(aead, metaBucket, checkKey, []byte(checkValue)))
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(stateTemp)
		return fmt.Errorf("store: initializing %s: %w", stateTemp, err)
	}
	if err := root.Rename(stateTemp, StateFile); err != nil {
		return fmt.Errorf("store: renaming %s to %s: %w", stateTemp, StateFile, err)
	}
	return syncDir(root)
}

func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("store: opening directory to sync it: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: syncing directory: %w", err)
	}
	return nil
}
