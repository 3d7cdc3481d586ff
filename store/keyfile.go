package store

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cloister-dev/cloister/seal"
)

const (
	// dataKeySize is the size of the data key in bytes (AES-256).
	dataKeySize = 32
	// keyFileVersion is the only data-key.json version this code reads.
	keyFileVersion = 1
	// maxKeyFileSize bounds data-key.json: 256 KiB leaves room for a
	// recovery record (see MaxRecoveryRecord).
	maxKeyFileSize = 256 << 10
	// MaxRecoveryRecord bounds the recovery record kept in data-key.json.
	MaxRecoveryRecord = 192 << 10
	// dataKeyAD binds the sealed data key to its purpose.
	dataKeyAD = "cloister-store-data-key-v1"
	// keyTemp is where a new data-key.json is written before it is renamed.
	keyTemp = ".data-key.json.tmp"
)

// keyFile is the JSON form of data-key.json. Unknown fields are an error.
type keyFile struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	Sealed  []byte `json:"sealed"` // standard base64 in JSON
	// Recovery is the recovery record, opaque to the store: a JSON value its
	// owner (the Coordinator's recovery) writes and checks. It is kept in
	// plain text beside the sealed key because it is needed exactly when
	// the key cannot be unsealed; its owner authenticates it once the key
	// is recovered.
	Recovery json.RawMessage `json:"recovery,omitempty"`
}

// loadKeyFile reads and checks data-key.json without unsealing it. Its error
// wraps fs.ErrNotExist if the file does not exist.
func loadKeyFile(root *os.Root) (keyFile, error) {
	f, err := root.Open(KeyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return keyFile{}, err
		}
		return keyFile{}, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return keyFile{}, fmt.Errorf("store: reading %s: %w", KeyFile, err)
	}
	if len(raw) > maxKeyFileSize {
		return keyFile{}, keyFileCorrupt(nil, "is larger than %d bytes", maxKeyFileSize)
	}
	return parseKeyFile(raw)
}

// readDataKey reads, checks and unseals data-key.json. Its error wraps
// fs.ErrNotExist if the file does not exist, and matches ErrUnseal if the
// key does not unseal with s.
func readDataKey(root *os.Root, s seal.Sealer) ([]byte, error) {
	kf, err := loadKeyFile(root)
	if err != nil {
		return nil, err
	}
	return unsealKey(kf, s)
}

// unsealKey unseals the data key of kf with s.
func unsealKey(kf keyFile, s seal.Sealer) ([]byte, error) {
	if kf.Kind != s.Kind() {
		return nil, fmt.Errorf("store: %s was sealed by a %q sealer, but this process uses %q; start with the sealer that made the store", KeyFile, kf.Kind, s.Kind())
	}
	key, err := s.Unseal(kf.Sealed, []byte(dataKeyAD))
	switch {
	case errors.Is(err, seal.ErrMalformed):
		return nil, keyFileCorrupt(err, "holds a malformed sealed key: %v", err)
	case err != nil:
		// Authentication failed: sealed elsewhere, or its bytes changed.
		return nil, &unsealError{msg: fmt.Sprintf("store: %s cannot be unsealed by this %q sealer (sealed on another machine, by another enclave signer, or with another simulated key; or the file was damaged)", KeyFile, s.Kind()), cause: err}
	case len(key) != dataKeySize:
		clear(key)
		return nil, keyFileCorrupt(nil, "holds a %d-byte data key, expected %d", len(key), dataKeySize)
	}
	return key, nil
}

// keyFileCorrupt returns an error matching ErrCorrupt about data-key.json.
func keyFileCorrupt(cause error, format string, args ...any) error {
	return &corruptError{
		msg:   fmt.Sprintf("store: %s %s; the file is damaged: restore it from a backup (a new one cannot decrypt the existing state)", KeyFile, fmt.Sprintf(format, args...)),
		cause: cause,
	}
}

// parseKeyFile decodes data-key.json strictly: one JSON object with known
// fields only, version 1, a kind and a sealed key. Its errors match
// ErrCorrupt.
func parseKeyFile(raw []byte) (keyFile, error) {
	var kf keyFile
	if len(raw) == 0 {
		return kf, keyFileCorrupt(nil, "is empty (0 bytes), expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return kf, keyFileCorrupt(err, "is not valid: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return kf, keyFileCorrupt(nil, "has data after its JSON object")
	}
	switch {
	case kf.Version != keyFileVersion:
		// A later version is not damage, but this code cannot read it.
		return kf, fmt.Errorf("store: %s has version %d, expected %d", KeyFile, kf.Version, keyFileVersion)
	case kf.Kind == "":
		return kf, keyFileCorrupt(nil, "has no sealer kind")
	case len(kf.Sealed) == 0:
		return kf, keyFileCorrupt(nil, "has no sealed key")
	case len(kf.Recovery) > MaxRecoveryRecord:
		return kf, keyFileCorrupt(nil, "holds a recovery record of %d bytes, expected at most %d", len(kf.Recovery), MaxRecoveryRecord)
	}
	return kf, nil
}

// createDataKey makes a random data key, seals it with s and writes
// data-key.json atomically. It must only be called when no key file exists.
func createDataKey(root *os.Root, s seal.Sealer) ([]byte, error) {
	key := make([]byte, dataKeySize)
	rand.Read(key)
	sealed, err := s.Seal(key, []byte(dataKeyAD))
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("store: sealing the new data key: %w", err)
	}
	raw, err := json.Marshal(keyFile{Version: keyFileVersion, Kind: s.Kind(), Sealed: sealed})
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("store: encoding %s: %w", KeyFile, err)
	}
	if err := writeFileAtomic(root, KeyFile, keyTemp, append(raw, '\n')); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// writeFileAtomic writes data to name through tmp: create (0600), write,
// fsync, rename, fsync the directory. A crash leaves either no file or the
// whole file.
func writeFileAtomic(root *os.Root, name, tmp string, data []byte) error {
	if err := root.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: removing a stale %s: %w", tmp, err)
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: creating %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("store: writing %s: %w", name, err)
	}
	return syncDir(root)
}
