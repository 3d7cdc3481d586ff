package store

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"go.etcd.io/bbolt"
)

// # State versions and rollback
//
// Every write transaction that changes something gives the state a new version: version
// n+1 and its hash
//
//	hash(n+1) = SHA-256("cloister-state-version-v1\x00" ‖ hash(n) ‖ n+1 (8 bytes, big-endian)
//	                    ‖ SHA-256 of the transaction's writes)
//
// where the writes are, in order, each Put's bucket, key and stored (encrypted) value and
// each Delete's bucket and key, every field length-prefixed. Version 0 has the zero hash.
// The version and hash are stored, encrypted like any value, in the internal bucket in the
// same transaction, so they change exactly with the state.
//
// Beside state.db, VersionFile records the newest version the store reached: two fixed
// 128-byte slots, each an encrypted (version, hash) record, written alternately in place and
// fsynced after every commit that changed the state, before Update or Batch returns (one
// write serves all the commits made while the one before it was written). A torn
// write damages one slot; the other holds the version before. Open refuses a state.db older
// than the newest version recorded ([ErrRolledBack]), and one of the same version but another
// hash. A state.db one version newer than the record is the commit a crash cut short before
// the record was written, and is accepted.
//
// This catches a state.db replaced by an older copy. It cannot catch a host that restores
// the whole directory (state.db and VersionFile) from one moment: both files live on the
// host's disk. Clients that remember the version they saw, and a freshness record kept apart
// from the state (the HA store), catch that.

const (
	// VersionFile records the newest state version a store reached (see ErrRolledBack).
	VersionFile = "state-version"

	versionKey      = "version" // internal record: version (8 bytes) ‖ hash (32 bytes)
	versionRecLen   = 8 + sha256.Size
	versionDomain   = "cloister-state-version-v1\x00"
	versionSlotSize = 128
	// versionFileAD names the file's records in their additional data: bucket and key as if
	// stored (internal bucket names start with NUL, so no value of state.db can pass for one).
	versionFileBucket = "\x00state-version"
	versionFileKey    = "newest"
	versionTemp       = ".state-version.tmp"
)

// ErrRolledBack is matched by Open's error when state.db is older than the newest state the
// store reached, or not the state of that version: a copy of an earlier state.db was put in
// its place. The error names both versions. Restore the newest state.db; to go back to a
// backup on purpose, restore the backup's whole directory (state.db with its VersionFile and
// KeyFile).
var ErrRolledBack = errors.New("store: state.db is older than the newest state this store reached")

// Version is a state version: a count of the write transactions that changed the state, and
// the hash that chains it to every earlier one (see the package documentation).
type Version struct {
	N    uint64
	Hash [sha256.Size]byte
}

func (v Version) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, versionRecLen), v.N)
	return append(b, v.Hash[:]...)
}

func decodeVersion(b []byte) (Version, error) {
	if len(b) != versionRecLen {
		return Version{}, fmt.Errorf("a state version record is %d bytes, expected %d", len(b), versionRecLen)
	}
	v := Version{N: binary.BigEndian.Uint64(b)}
	copy(v.Hash[:], b[8:])
	return v, nil
}

// next returns the version after v for a transaction whose writes hash to writes.
func (v Version) next(writes []byte) Version {
	h := sha256.New()
	h.Write([]byte(versionDomain))
	h.Write(v.Hash[:])
	h.Write(binary.BigEndian.AppendUint64(nil, v.N+1))
	h.Write(writes)
	n := Version{N: v.N + 1}
	h.Sum(n.Hash[:0])
	return n
}

// Version returns the version of the state as of the last commit. It is safe for concurrent
// use.
func (db *DB) Version() Version {
	db.versionMu.Lock()
	defer db.versionMu.Unlock()
	return db.version
}

// noteWrite adds one write to the transaction's hash of writes.
func (tx *Tx) noteWrite(op byte, bucket, key string, sealed []byte) {
	if tx.writes == nil {
		tx.writes = sha256.New()
	}
	w := tx.writes
	w.Write([]byte{op})
	for _, f := range [][]byte{[]byte(bucket), []byte(key), sealed} {
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		w.Write(f)
	}
}

// bumpVersion stores the next version in btx if the transaction changed anything, and
// returns it (ok false if nothing changed).
func (db *DB) bumpVersion(btx *bbolt.Tx, writes hash.Hash) (Version, bool, error) {
	if writes == nil {
		return Version{}, false, nil
	}
	v := db.Version().next(writes.Sum(nil))
	b := btx.Bucket([]byte(metaBucket))
	if b == nil {
		return Version{}, false, fmt.Errorf("store: %s has no internal bucket", StateFile)
	}
	if err := b.Put([]byte(versionKey), sealValue(db.aead, metaBucket, versionKey, v.encode())); err != nil {
		return Version{}, false, fmt.Errorf("store: writing the state version: %w", err)
	}
	return v, true, nil
}

// setVersion records v as the state's version once its commit is durable. The caller holds
// db.writer.
func (db *DB) setVersion(v Version) {
	db.versionMu.Lock()
	db.version = v
	db.versionMu.Unlock()
}

// syncVersion writes the newest committed version to VersionFile unless it is there already.
// Update and Batch call it after their commit and before they return, without db.writer, so
// that the next commit need not wait for it, and one write covers every commit made while
// the one before was written. If it fails, the change it covers is committed, but the error
// is returned (a caller must not act on a change that a rollback could undo) and later writes
// are refused.
func (db *DB) syncVersion() error {
	db.anchorMu.Lock()
	defer db.anchorMu.Unlock()
	if db.anchorErr != nil {
		return db.anchorErr
	}
	v := db.Version()
	if v.N <= db.anchored.N {
		return nil
	}
	if err := db.anchor.write(db.aead, v); err != nil {
		e := &corruptError{msg: fmt.Sprintf("store: the change was committed, but recording state version %d in %s failed: %v; later writes are refused: check the disk and restart", v.N, VersionFile, err), cause: err}
		db.failed.CompareAndSwap(nil, e)
		db.anchorErr = e
		db.log.Error("store: could not record the state version", "file", VersionFile, "version", v.N, "error", err.Error())
		return e
	}
	db.anchored = v
	return nil
}

// storedVersion reads the state version recorded in state.db: the zero Version for a store
// made before versions.
func (db *DB) storedVersion() (Version, error) {
	var v Version
	err := db.bolt.View(func(btx *bbolt.Tx) error {
		b := btx.Bucket([]byte(metaBucket))
		if b == nil {
			return fmt.Errorf("store: %s has no internal bucket", StateFile)
		}
		sealed := b.Get([]byte(versionKey))
		if sealed == nil {
			return nil
		}
		plain, err := db.open(metaBucket, versionKey, sealed)
		if err != nil {
			return err
		}
		if v, err = decodeVersion(plain); err != nil {
			return stateCorrupt("is corrupt: %v", err)
		}
		return nil
	})
	return v, err
}

// versionAnchor is the open VersionFile.
type versionAnchor struct {
	f *os.File
}

// write records v in the slot of its parity and fsyncs the file.
func (a *versionAnchor) write(aead cipher.AEAD, v Version) error {
	if a.f == nil {
		return errors.New("the file is not open")
	}
	slot := make([]byte, versionSlotSize)
	sealed := aead.Seal([]byte{valueVersion}, nil, v.encode(), additionalData(versionFileBucket, versionFileKey))
	slot[0] = byte(len(sealed))
	copy(slot[1:], sealed)
	if _, err := a.f.WriteAt(slot, int64(v.N%2)*versionSlotSize); err != nil {
		return err
	}
	return datasync(a.f)
}

func (a *versionAnchor) close() error {
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// readAnchor reads VersionFile: the newest version in a slot that authenticates. Its error
// wraps fs.ErrNotExist if the file does not exist.
func readAnchor(root *os.Root, aead cipher.AEAD) (Version, error) {
	if fi, err := root.Lstat(VersionFile); err == nil && !fi.Mode().IsRegular() {
		return Version{}, &corruptError{msg: fmt.Sprintf("store: %s is not a regular file (mode %s)", VersionFile, fi.Mode())}
	}
	f, err := root.Open(VersionFile)
	if err != nil {
		return Version{}, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, 2*versionSlotSize+1))
	if err != nil {
		return Version{}, fmt.Errorf("store: reading %s: %w", VersionFile, err)
	}
	if len(raw) != 2*versionSlotSize {
		return Version{}, &corruptError{msg: fmt.Sprintf("store: %s is %d bytes, expected %d: the file is damaged", VersionFile, len(raw), 2*versionSlotSize)}
	}
	var best Version
	found := 0
	for i := range 2 {
		slot := raw[i*versionSlotSize : (i+1)*versionSlotSize]
		n := int(slot[0])
		if n == 0 || n > versionSlotSize-1 {
			continue
		}
		plain, _, err := openAppend(aead, nil, nil, versionFileBucket, versionFileKey, slot[1:1+n])
		if err != nil {
			continue
		}
		v, err := decodeVersion(plain)
		if err != nil || v.N%2 != uint64(i) {
			continue
		}
		if found == 0 || v.N > best.N {
			best = v
		}
		found++
	}
	if found == 0 {
		return Version{}, &corruptError{msg: fmt.Sprintf("store: %s holds no record that authenticates under the data key: it is damaged, or belongs to another store", VersionFile)}
	}
	return best, nil
}

// createAnchor writes a new VersionFile recording v: a temporary file, fsynced, renamed into
// place, the directory fsynced.
func (db *DB) createAnchor(v Version) error {
	f, err := db.root.OpenFile(versionTemp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: creating %s: %w", versionTemp, err)
	}
	a := &versionAnchor{f: f}
	err = f.Truncate(2 * versionSlotSize)
	if err == nil {
		err = a.write(db.aead, v)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		db.root.Remove(versionTemp)
		return fmt.Errorf("store: writing %s: %w", versionTemp, err)
	}
	if err := db.root.Rename(versionTemp, VersionFile); err != nil {
		return fmt.Errorf("store: renaming %s to %s: %w", versionTemp, VersionFile, err)
	}
	return syncDir(db.root)
}

// checkVersion compares state.db's version with VersionFile's (see ErrRolledBack), creates
// VersionFile for a store that has none yet, brings it up to state.db's version, and opens
// it for the commits to come.
func (db *DB) checkVersion() error {
	state, err := db.storedVersion()
	if err != nil {
		return err
	}
	seen, err := readAnchor(db.root, db.aead)
	switch {
	case errors.Is(err, fs.ErrNotExist) && state.N == 0:
		// A new store, or one made before versions: nothing to compare yet.
		if err := db.createAnchor(state); err != nil {
			return err
		}
		seen = state
	case errors.Is(err, fs.ErrNotExist):
		return &rolledBackError{msg: fmt.Sprintf("store: %s is at state version %d, but %s, which records the newest version this store reached, is missing: "+
			"refusing to serve from a state that cannot be shown to be the newest. Restore %s from the same backup as %s (or the newest of both)",
			StateFile, state.N, VersionFile, VersionFile, StateFile)}
	case err != nil:
		return err
	case seen.N > state.N:
		return &rolledBackError{msg: fmt.Sprintf("store: %s is at state version %d, but this store reached version %d (recorded in %s): "+
			"%s was replaced by an older copy, which would undo later changes (activation counts, manifest updates, removed users); refusing to serve from it. "+
			"Put back the newest %s; to return to a backup on purpose, restore the backup's whole directory (%s, %s and %s)",
			StateFile, state.N, seen.N, VersionFile, StateFile, StateFile, StateFile, VersionFile, KeyFile)}
	case seen.N == state.N && seen.Hash != state.Hash:
		return &rolledBackError{msg: fmt.Sprintf("store: %s is at state version %d with hash %x, but the state this store reached at version %d has hash %x (recorded in %s): "+
			"%s is not the state this store wrote; refusing to serve from it",
			StateFile, state.N, state.Hash[:8], seen.N, seen.Hash[:8], VersionFile, StateFile)}
	case state.N > seen.N+1:
		db.log.Warn("store: "+VersionFile+" is older than "+StateFile+" by more than the one commit a crash can leave unrecorded; was it restored from a backup?",
			"state_version", state.N, "recorded_version", seen.N)
	}
	f, err := db.root.OpenFile(VersionFile, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", VersionFile, err)
	}
	db.anchor = versionAnchor{f: f}
	db.version, db.anchored = state, state
	if state != seen {
		if err := db.anchor.write(db.aead, state); err != nil {
			return fmt.Errorf("store: recording state version %d in %s: %w", state.N, VersionFile, err)
		}
	}
	return nil
}

// checkNoState refuses to create a new state.db in a store that has reached a version
// above 0: deleting state.db would otherwise start the deployment over.
func checkNoState(root *os.Root, aead cipher.AEAD) error {
	seen, err := readAnchor(root, aead)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case seen.N > 0:
		return &rolledBackError{msg: fmt.Sprintf("store: %s is missing, but this store reached state version %d (recorded in %s): "+
			"a new, empty state would start the deployment over; refusing to create one. Put back the newest %s",
			StateFile, seen.N, VersionFile, StateFile)}
	}
	return nil
}

// rolledBackError matches ErrRolledBack.
type rolledBackError struct{ msg string }

func (e *rolledBackError) Error() string        { return e.msg }
func (e *rolledBackError) Is(target error) bool { return target == ErrRolledBack }
