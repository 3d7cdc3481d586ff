package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/cloister-dev/cloister/seal"
)

// Recovery support: what a Coordinator that moved to another CPU needs to get its state back
// from key holders. The store knows nothing of shares or holders; it keeps an opaque recovery
// record beside the sealed key (its owner writes it with [DB.SetRecovery] and reads it with
// [ReadRecovery] when the key no longer unseals), lends the data key to its owner for splitting
// ([DB.WithDataKey]), and reopens a store under a data key its owner reconstructed
// ([Recover]).

// ErrUnseal is matched by Open's error when data-key.json is intact but its sealed data key
// does not authenticate under the sealer given: it was sealed on another CPU, by another
// enclave signer, or with another simulated key (or the sealed bytes were changed). The state
// itself may be fine; [Recover] reopens it with the data key from elsewhere.
var ErrUnseal = errors.New("store: the sealed data key cannot be unsealed with this sealer")

type unsealError struct {
	msg   string
	cause error
}

func (e *unsealError) Error() string        { return e.msg }
func (e *unsealError) Is(target error) bool { return target == ErrUnseal }
func (e *unsealError) Unwrap() error        { return e.cause }

// ReadRecovery returns the recovery record kept in dir's data-key.json, or nil if it has none,
// without unsealing anything and without taking the directory lock: a Coordinator that cannot
// unseal its key reads it to start recovery. The record is as its owner wrote it and is not
// authenticated here: its owner must check it once the key is back.
func ReadRecovery(dir string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("store: opening directory: %w", err)
	}
	defer root.Close()
	kf, err := loadKeyFile(root)
	if err != nil {
		return nil, err
	}
	return kf.Recovery, nil
}

// Recovery returns the recovery record in data-key.json, or nil if there is none.
func (db *DB) Recovery() ([]byte, error) {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	kf, err := loadKeyFile(db.root)
	if err != nil {
		return nil, err
	}
	return kf.Recovery, nil
}

// SetRecovery replaces the recovery record in data-key.json with record (a JSON value of at
// most MaxRecoveryRecord bytes; nil removes it), keeping the sealed key as it is. The file is
// replaced atomically: a crash leaves the old record or the new one, never a key file
// without its key.
func (db *DB) SetRecovery(record []byte) error {
	if len(record) > MaxRecoveryRecord {
		return fmt.Errorf("store: recovery record is %d bytes, expected at most %d", len(record), MaxRecoveryRecord)
	}
	if record != nil && !json.Valid(record) {
		return errors.New("store: recovery record is not a JSON value")
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	kf, err := loadKeyFile(db.root)
	if err != nil {
		return err
	}
	kf.Recovery = record
	return writeKeyFile(db.root, kf)
}

// WithDataKey calls fn with the store's data key, for its owner to split among recovery key
// holders. fn must not keep key or change it: it is the store's own copy.
func (db *DB) WithDataKey(fn func(key []byte) error) error {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if len(db.dataKey) != dataKeySize {
		return errors.New("store: the data key is not available (the store is closed)")
	}
	return fn(db.dataKey)
}

// Recover opens the store in dir, whose data-key.json no longer unseals (see [ErrUnseal]),
// with key, the data key reconstructed elsewhere. It first proves that key is this store's:
// state.db must be checked whole, and its check record and every value must authenticate
// under key (otherwise the error matches ErrKeyMismatch or ErrCorrupt and nothing is written).
// Then it seals key with s and replaces data-key.json atomically (written to a temporary file,
// synced, renamed, the directory synced), keeping the recovery record; until the rename the
// old file stays, so a crash at any point leaves a store that either still needs recovery or
// opens with s. Finally it opens the store as [Open] does. key is not kept by the caller's
// slice; clear it after the call.
func Recover(dir string, s seal.Sealer, key []byte, opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("store: sealer is nil")
	}
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("store: recovered data key is %d bytes, expected %d", len(key), dataKeySize)
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
	db, err := recoverLocked(root, s, key, opts)
	if err != nil {
		lock.Close()
		root.Close()
		return nil, err
	}
	db.lock = lock
	return db, nil
}

func recoverLocked(root *os.Root, s seal.Sealer, key []byte, opts Options) (*DB, error) {
	kf, err := loadKeyFile(root)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	probe := &DB{aead: aead, maxValueSize: opts.MaxValueSize, log: opts.Logger, root: root}
	if _, err := probe.checkState(keyIDRecord(key)); err != nil {
		return nil, fmt.Errorf("store: the recovered data key does not open %s: %w", StateFile, err)
	}
	sealed, err := s.Seal(key, []byte(dataKeyAD))
	if err != nil {
		return nil, fmt.Errorf("store: sealing the recovered data key: %w", err)
	}
	kf.Kind, kf.Sealed = s.Kind(), sealed
	if err := writeKeyFile(root, kf); err != nil {
		return nil, err
	}
	opts.Logger.Warn("store: data key recovered and sealed again under this sealer", "dir", root.Name(), "sealer", s.Kind())
	return openLocked(root, s, opts)
}

// writeKeyFile writes kf as data-key.json atomically.
func writeKeyFile(root *os.Root, kf keyFile) error {
	raw, err := json.Marshal(kf)
	if err != nil {
		return fmt.Errorf("store: encoding %s: %w", KeyFile, err)
	}
	if len(raw) > maxKeyFileSize {
		return fmt.Errorf("store: %s would be %d bytes, expected at most %d", KeyFile, len(raw), maxKeyFileSize)
	}
	return writeFileAtomic(root, KeyFile, keyTemp, append(raw, '\n'))
}
