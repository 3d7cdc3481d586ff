package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

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
	// keyIDKey holds the data key's ID record (see keyIDRecord), in plain
	// text beside the check record, so that Open can tell the key file of
	// another store from a damaged check record.
	keyIDKey    = "key-id"
	keyIDDomain = "cloister-store-key-id-v1\x00"
	keyIDSize   = 16

	// stateTemp is where a new state.db is built before it is renamed.
	stateTemp = ".state.db.tmp"
)

// Open opens the store in dir, creating dir (mode 0700) and a new store in
// it if it holds neither state.db nor data-key.json. s seals the data key.
//
// If state.db exists, data-key.json must exist, be sealed by a sealer of
// the same Kind, unseal with s, and decrypt state.db's check record; and
// state.db must be a complete, undamaged bbolt file: Open checks every page
// in use and authenticates every value before bbolt maps the file.
// Otherwise Open returns an error that says which file, what was expected
// and what was found, and writes nothing. If only data-key.json exists (a
// first start was interrupted), its key is reused for a new empty state.db.
//
// Open never panics on damaged files. Its error matches ErrCorrupt if
// state.db or data-key.json is damaged, ErrKeyMismatch if data-key.json
// holds the key of another store, and ErrLocked if the directory stays
// locked by another DB for opts.LockTimeout.
func Open(dir string, s seal.Sealer, opts Options) (*DB, error) {
	if s == nil {
		return nil, errors.New("store: sealer is nil")
	}
	return openDir(dir, opts, func(root *os.Root, opts Options) (*DB, error) {
		return openLocked(root, s, opts)
	})
}

// openDir is the start both backends share: it validates opts, creates dir (mode 0700) if
// needed, takes its lock and runs open with it held; the DB open returns keeps the lock.
func openDir(dir string, opts Options, open func(*os.Root, Options) (*DB, error)) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
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
	db, err := open(root, opts)
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
	aead, key, keyID, created, err := loadOrCreate(root, s, opts, log)
	if err != nil {
		return nil, err
	}
	return finishOpen(root, s, aead, key, keyID, created, opts, log)
}

// finishOpen checks state.db against the data key key (whose cipher is aead and ID record
// keyID), then opens it with bbolt. The DB keeps key; on error key is cleared.
func finishOpen(root *os.Root, s seal.Sealer, aead cipher.AEAD, key, keyID []byte, created bool, opts Options, log *slog.Logger) (*DB, error) {
	db := &DB{
		aead:         aead,
		dataKey:      key,
		sealer:       s,
		maxValueSize: opts.MaxValueSize,
		log:          opts.Logger,
		writer:       make(chan struct{}, 1),
		closeWait:    defaultCloseWait,
		root:         root,
	}
	info, err := db.checkState(keyID)
	if err != nil {
		clear(key)
		return nil, err
	}
	for _, w := range info.warnings {
		log.Warn("store: " + w)
	}
	if err := db.openBolt(opts); err != nil {
		clear(key)
		return nil, err
	}
	if err := db.checkVersion(); err != nil {
		db.closeBolt()
		db.anchor.close()
		clear(key)
		return nil, err
	}
	if info.keyID == nil {
		// A store made before key IDs, whose check record just proved the
		// key: record its ID.
		err := db.update(func(tx *Tx) error {
			b := tx.tx.Bucket([]byte(metaBucket))
			if b == nil {
				return fmt.Errorf("store: %s has no internal bucket", StateFile)
			}
			return b.Put([]byte(keyIDKey), keyID)
		})
		if err != nil {
			db.closeBolt()
			db.anchor.close()
			clear(key)
			return nil, fmt.Errorf("store: recording the data key's ID in %s: %w", StateFile, err)
		}
	}
	log.Info("store: opened", "created", created, "pages_in_use", info.hwm, "page_size", info.pageSize, "state_version", db.version.N)
	return db, nil
}

// loadOrCreate returns the value cipher under the store's data key, the
// key and the key's ID record. If root has no state.db it first creates
// one, and a data key if there is none either; created reports that.
func loadOrCreate(root *os.Root, s seal.Sealer, opts Options, log *slog.Logger) (aead cipher.AEAD, key, keyID []byte, created bool, err error) {
	_, err = root.Lstat(StateFile)
	stateExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, false, fmt.Errorf("store: %w", err)
	}
	key, err = readDataKey(root, s)
	switch {
	case errors.Is(err, fs.ErrNotExist) && stateExists:
		return nil, nil, nil, false, fmt.Errorf("store: %s exists but %s is missing; restore %s from a backup (a new one cannot decrypt the existing state)", StateFile, KeyFile, KeyFile)
	case errors.Is(err, fs.ErrNotExist):
		if key, err = createDataKey(root, s); err != nil {
			return nil, nil, nil, false, err
		}
	case err != nil:
		return nil, nil, nil, false, err
	case !stateExists:
		log.Warn("store: " + KeyFile + " exists without " + StateFile + "; creating an empty " + StateFile + " under the existing key")
	}
	aead, err = newAEAD(key)
	keyID = keyIDRecord(key)
	if err != nil {
		clear(key)
		return nil, nil, nil, false, err
	}
	if !stateExists {
		if err := checkNoState(root, aead); err != nil {
			clear(key)
			return nil, nil, nil, false, err
		}
		if err := createState(root, aead, keyID, opts); err != nil {
			clear(key)
			return nil, nil, nil, false, err
		}
	}
	return aead, key, keyID, !stateExists, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keyIDRecord returns the key ID record of a data key: the first 16 bytes
// of SHA-256(keyIDDomain ‖ key), which name the key without revealing it,
// then their CRC-32C, which tells a damaged record from another key's.
func keyIDRecord(key []byte) []byte {
	h := sha256.New()
	h.Write([]byte(keyIDDomain))
	h.Write(key)
	id := h.Sum(nil)[:keyIDSize]
	return binary.BigEndian.AppendUint32(id, crc32.Checksum(id, castagnoli))
}

// parseKeyID returns the key ID in a key ID record, and whether the record
// is intact.
func parseKeyID(rec []byte) ([]byte, bool) {
	if len(rec) != keyIDSize+4 {
		return nil, false
	}
	id := rec[:keyIDSize]
	return id, binary.BigEndian.Uint32(rec[keyIDSize:]) == crc32.Checksum(id, castagnoli)
}

// boltOptions opens bbolt's file through root, so that state.db cannot be
// a link out of the store directory.
func boltOptions(root *os.Root, opts Options) *bbolt.Options {
	return &bbolt.Options{
		Timeout: opts.LockTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return root.OpenFile(name, flag, perm)
		},
	}
}

// openBolt opens the checked state.db with bbolt for reading and writing.
// Should bbolt still panic (the file changed since checkState), the panic
// becomes an error and the file is closed, which releases bbolt's lock on
// it; a memory map bbolt made then leaks.
func (db *DB) openBolt(opts Options) (err error) {
	var file *os.File
	o := boltOptions(db.root, opts)
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := db.root.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				file.Close()
			}
			err = &corruptError{msg: fmt.Sprintf("store: %s is corrupt: bbolt failed opening it (%s); it was left unchanged: restore it from a backup", StateFile, panicText(r))}
		}
	}()
	bdb, err := bbolt.Open(StateFile, 0o600, o)
	if err != nil {
		return boltOpenError(err, opts)
	}
	db.bolt, db.file = bdb, file
	return nil
}

func boltOpenError(err error, opts Options) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w: %s is held by another program (waited %v)", ErrLocked, StateFile, opts.LockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return &corruptError{msg: fmt.Sprintf("store: %s is not a usable bbolt database; it was left unchanged: %v", StateFile, err), cause: err}
	}
	return fmt.Errorf("store: %s is not a usable bbolt database; it was left unchanged: %w", StateFile, err)
}

// checkState checks state.db before bbolt maps it (see verifyState), then
// that the data key belongs to it (see matchKey) and decrypts every value.
// It writes nothing.
func (db *DB) checkState(keyID []byte) (*stateInfo, error) {
	fi, err := db.root.Stat(StateFile)
	switch {
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("store: %s is not a regular file (mode %s)", StateFile, fi.Mode())
	}
	f, err := db.root.Open(StateFile)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if fi.Size() == 0 {
		return nil, &corruptError{msg: fmt.Sprintf("store: %s is empty (0 bytes), expected a bbolt database; it was left unchanged: restore it from a backup", StateFile)}
	}
	var plain, ad []byte
	info, err := verifyStateLimit(f, fi.Size(), db.maxValueSize, func(bucket string, key, sealed []byte) error {
		value, space, err := openAppend(db.aead, plain[:0], ad, bucket, key, sealed)
		if err == nil {
			plain = value
		}
		ad = space
		return err
	})
	clear(plain[:cap(plain)])
	if err != nil {
		return nil, err
	}
	if err := db.matchKey(info, keyID); err != nil {
		return nil, err
	}
	if info.valueErr != nil {
		return nil, &corruptError{
			msg:   fmt.Sprintf("store: %s is corrupt: %s; it was left unchanged: restore it from a backup", StateFile, strings.TrimPrefix(info.valueErr.Error(), "store: ")),
			cause: info.valueErr,
		}
	}
	return info, nil
}

// matchKey checks that the data key, whose ID record is keyID, belongs to
// the state.db that info describes. The check record decides; when it does
// not authenticate, the key ID record and the other values tell a damaged
// check record (ErrCorrupt) from a key file of another store
// (ErrKeyMismatch).
func (db *DB) matchKey(info *stateInfo, keyID []byte) error {
	checkOK := false
	if info.check != nil {
		v, err := db.open(metaBucket, checkKey, info.check)
		checkOK = err == nil && bytes.Equal(v, []byte(checkValue))
	}
	want, _ := parseKeyID(keyID)
	stored, storedOK := parseKeyID(info.keyID)
	sameKey := storedOK && bytes.Equal(stored, want)
	damaged := func(format string, args ...any) error {
		return stateCorrupt("is corrupt: "+format, args...)
	}
	switch {
	case checkOK && info.keyID != nil && !storedOK:
		return damaged("its key ID record (%d bytes) fails its checksum, although the check record authenticates under the key in %s", len(info.keyID), KeyFile)
	case checkOK && info.keyID != nil && !sameKey:
		return damaged("its key ID record names key %x, but the check record authenticates under the key in %s (key ID %x): the record is damaged", stored, KeyFile, want)
	case checkOK:
		return nil
	case info.check == nil && !info.metaBucket && info.valuesOK == 0:
		return stateCorrupt("has no check record: it is not a Cloister store")
	}
	evidence := ""
	switch {
	case sameKey:
		evidence = fmt.Sprintf("the key in %s has the key ID recorded in %s (%x)", KeyFile, StateFile, want)
	case info.valuesOK > 0:
		evidence = fmt.Sprintf("other values authenticate under the key in %s", KeyFile)
	}
	switch {
	case info.check == nil && evidence != "":
		return damaged("has no check record (bucket %q key %q), although %s: the record or the page holding it is damaged", metaBucket, checkKey, evidence)
	case info.check == nil:
		return damaged("has no check record (bucket %q key %q)", metaBucket, checkKey)
	case evidence != "":
		return damaged("its check record does not authenticate, although %s: the record is damaged", evidence)
	case info.keyID != nil && !storedOK:
		return damaged("its check record does not authenticate and its key ID record fails its checksum: the file is damaged, or %s belongs to another store", KeyFile)
	}
	msg := fmt.Sprintf("store: the data key in %s does not decrypt %s's check record: the two files belong to different stores; both were left unchanged", KeyFile, StateFile)
	if info.keyID != nil {
		msg += fmt.Sprintf(" (%s was made with key ID %x, %s holds key ID %x)", StateFile, stored, KeyFile, want)
	} else {
		msg += fmt.Sprintf(" (or, as %s predates key IDs and holds no other value, its check record is damaged)", StateFile)
	}
	return &keyMismatchError{msg: msg}
}

// createState builds a new state.db holding only the check and key ID
// records under a temporary name, then renames it into place and syncs the
// directory.
func createState(root *os.Root, aead cipher.AEAD, keyID []byte, opts Options) error {
	if err := root.Remove(stateTemp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: removing a stale %s: %w", stateTemp, err)
	}
	bdb, err := bbolt.Open(stateTemp, 0o600, boltOptions(root, opts))
	if err != nil {
		return fmt.Errorf("store: creating %s: %w", stateTemp, err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(metaBucket))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(keyIDKey), keyID); err != nil {
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
