package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
//
// On a shared state with a shelf ([Options.Keys]) the record is the shelf's, which every
// replica shares and a replica on a new CPU finds.
func (db *DB) Recovery() ([]byte, error) {
	if db.remote != nil && db.remote.keys != nil {
		ctx, cancel := context.WithTimeout(db.remote.ctx, remoteOpTimeout)
		defer cancel()
		copies, err := db.remote.keys.LoadKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: reading the recovery record from the shelf: %w", err)
		}
		return copies.Recovery, nil
	}
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
	if db.remote != nil && db.remote.keys != nil {
		ctx, cancel := context.WithTimeout(db.remote.ctx, remoteOpTimeout)
		defer cancel()
		if err := db.remote.keys.PutRecovery(ctx, record); err != nil {
			return fmt.Errorf("store: writing the recovery record to the shelf: %w", err)
		}
		return nil
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
// with key, the data key reconstructed elsewhere. It proves that key is this store's as Open
// proves an unsealed key: state.db is checked whole, and its check record and every value must
// authenticate under key (otherwise the error matches ErrKeyMismatch or ErrCorrupt and nothing
// is written). data-key.json is not changed yet: the caller records the recovery in the state
// and then calls [DB.Reseal], so that a crash before the reseal leaves a store that still needs
// recovery, never one that was recovered without a record of it. The DB keeps its own copy of
// key; clear the caller's after the call.
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
	db, err := recoverLocked(root, s, bytes.Clone(key), opts)
	if err != nil {
		lock.Close()
		root.Close()
		return nil, err
	}
	db.lock = lock
	return db, nil
}

func recoverLocked(root *os.Root, s seal.Sealer, key []byte, opts Options) (*DB, error) {
	if _, err := loadKeyFile(root); err != nil {
		clear(key)
		return nil, err
	}
	if _, err := root.Lstat(StateFile); err != nil {
		clear(key)
		return nil, fmt.Errorf("store: nothing to recover: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		clear(key)
		return nil, err
	}
	log := opts.Logger.With("dir", root.Name(), "sealer", s.Kind())
	db, err := finishOpen(root, s, aead, key, keyIDRecord(key), false, opts, log)
	if err != nil {
		return nil, fmt.Errorf("store: the recovered data key does not open %s: %w", StateFile, err)
	}
	return db, nil
}

// Reseal seals the data key with the DB's sealer and replaces data-key.json atomically
// (written to a temporary file, synced, renamed, the directory synced), keeping its recovery
// record. Until the rename the old file stays: a crash leaves a key file that either still
// needs recovery or opens with the new sealer. After [Recover] it makes the recovery last.
func (db *DB) Reseal() error {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if len(db.dataKey) != dataKeySize {
		return errors.New("store: the data key is not available (the store is closed)")
	}
	kf, err := loadKeyFile(db.root)
	if errors.Is(err, fs.ErrNotExist) && db.remote != nil {
		// A shared state recovered in a new directory: its first key file.
		kf, err = keyFile{Version: keyFileVersion}, nil
	}
	if err != nil {
		return err
	}
	sealed, err := db.sealer.Seal(db.dataKey, []byte(dataKeyAD))
	if err != nil {
		return fmt.Errorf("store: sealing the data key: %w", err)
	}
	kf.Kind, kf.Sealed = db.sealer.Kind(), sealed
	if err := writeKeyFile(db.root, kf); err != nil {
		return err
	}
	if db.remote != nil {
		ctx, cancel := context.WithTimeout(db.remote.ctx, remoteOpTimeout)
		defer cancel()
		db.shelveKey(ctx)
	}
	db.log.Warn("store: data key sealed again under this sealer", "dir", db.root.Name(), "sealer", db.sealer.Kind())
	return nil
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
