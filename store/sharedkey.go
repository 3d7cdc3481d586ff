package store

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cloister-dev/cloister/seal"
)

// # The data key of a shared state
//
// Every replica of a shared state holds the same data key. A replica keeps it in two places,
// both sealed by its own seal key: its directory's data-key.json (as the embedded store does)
// and, when [Options.Keys] is set, a [KeyShelf] beside the state, under the ID of its seal key
// ([seal.Sealer]s that have a KeyID method). The shelf is what lets a replica restarted on the
// same CPU with an empty directory (a pod with an emptyDir) open the state without asking
// anyone; data-key.json alone would be lost with the pod.
//
// A replica whose seal key has no copy anywhere (a new CPU) asks [Options.FetchKey] (in the
// Coordinator: a running peer, over mutually attested TLS) and accepts the key only if the
// state's sealed header authenticates under it and names its ID. If nothing gives it the key,
// OpenRemote fails with an error matching [ErrNoKey], and the Coordinator waits for recovery
// by key holders ([RecoverRemote]); the recovery record is kept on the shelf for exactly that.

// KeyShelf keeps, beside a shared state, copies of its data key (each sealed by one replica's
// seal key and named by that key's ID) and the recovery record. It sees only sealed keys.
// Its methods are called concurrently.
type KeyShelf interface {
	// LoadKeys returns the copies and the recovery record; an empty KeyCopies if none exist.
	LoadKeys(ctx context.Context) (KeyCopies, error)
	// PutKey adds, or replaces, the copy sealed under the seal key named id.
	PutKey(ctx context.Context, id string, sealed []byte) error
	// PutRecovery replaces the recovery record; nil removes it.
	PutRecovery(ctx context.Context, record []byte) error
}

// KeyCopies is what a KeyShelf holds.
type KeyCopies struct {
	// Sealed maps a seal key's ID to the data key sealed by it.
	Sealed map[string][]byte
	// Recovery is the recovery record (see [DB.SetRecovery]), or nil.
	Recovery []byte
}

// KeyFetcher gets the data key of a shared state from elsewhere (a running replica). check
// returns nil only for the state's own key; a fetcher that gets a key check refuses must not
// return it (it may try another source). seen is the newest state version the giver has seen,
// which the state must not be older than; zero if unknown.
type KeyFetcher func(ctx context.Context, check func(key []byte) error) (key []byte, seen Version, err error)

// ErrNoKey is matched by OpenRemote's error when a shared state exists, this replica's seal key
// has no copy of its data key (in data-key.json or on the shelf), and no peer gave it: every
// replica that holds the key is gone or on another CPU. The state may be fine; key holders can
// recover it ([RecoverRemote]).
var ErrNoKey = errors.New("store: no copy of the shared state's data key is sealed to this seal key, and no peer gave it")

// sealKeyID is implemented by sealers that can name their key (seal.Simulated, seal.Gramine).
type sealKeyID interface{ KeyID() string }

// keyIDOf returns the ID of s's key, or "" if s cannot name it.
func keyIDOf(s seal.Sealer) string {
	if k, ok := s.(sealKeyID); ok {
		return k.KeyID()
	}
	return ""
}

// stateKeyCheck returns the check a candidate data key of st must pass: the state's sealed
// header authenticates under it and names its ID, and the entries match the header. It returns
// the state's version.
func stateKeyCheck(st *RemoteState) func(key []byte) (Version, error) {
	return func(key []byte) (Version, error) {
		if len(key) != dataKeySize {
			return Version{}, fmt.Errorf("store: a data key of %d bytes, expected %d", len(key), dataKeySize)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return Version{}, err
		}
		return openHeaderWith(aead, keyIDRecord(key)[:keyIDSize], st)
	}
}

// obtainKey finds the data key of st for a replica whose data-key.json does not hold it: its
// copy on the shelf, else from opts.FetchKey. A key from either is used only if it opens st.
// Nothing is written: the caller writes data-key.json once the state passed its freshness
// check. peerSeen is the giver's newest version seen, and fromPeer says a peer gave the key.
//
// The error matches ErrNoKey only when the shelf was read and holds no usable copy and every
// peer asked answered without the key; a shelf that could not be read, or a fetch that failed
// for want of the infrastructure ([ErrUnavailable]: the API server, the self-quote), is
// returned as it is, to be retried, not taken for a lost key.
func obtainKey(ctx context.Context, s seal.Sealer, st *RemoteState, opts Options, why error) (key []byte, peerSeen Version, fromPeer bool, err error) {
	check := stateKeyCheck(st)
	var tried []error
	if why != nil {
		tried = append(tried, why)
	}
	if id := keyIDOf(s); id != "" && opts.Keys != nil {
		copies, err := opts.Keys.LoadKeys(ctx)
		if err != nil {
			return nil, Version{}, false, fmt.Errorf("store: reading the shelf of sealed key copies: %w", err)
		}
		switch sealed, ok := copies.Sealed[id]; {
		case !ok:
			tried = append(tried, fmt.Errorf("the shelf holds no copy sealed to this seal key (ID %s; %d copies of other seal keys)", id, len(copies.Sealed)))
		default:
			k, err := s.Unseal(sealed, []byte(dataKeyAD))
			if err == nil {
				_, err = check(k)
			}
			if err == nil {
				opts.Logger.Info("store: the data key was unsealed from this seal key's copy on the shelf", "seal_key_id", id)
				return k, Version{}, false, nil
			}
			clear(k)
			tried = append(tried, fmt.Errorf("the shelf's copy for seal key %s is not usable: %w", id, err))
		}
	}
	if opts.FetchKey == nil {
		return nil, Version{}, false, fmt.Errorf("%w (no peer to ask is configured): %w", ErrNoKey, errors.Join(tried...))
	}
	k, seen, err := opts.FetchKey(ctx, func(k []byte) error { _, err := check(k); return err })
	if errors.Is(err, ErrUnavailable) {
		return nil, Version{}, false, fmt.Errorf("store: asking the peers for the data key: %w", err)
	}
	if err != nil {
		return nil, Version{}, false, fmt.Errorf("%w: %w", ErrNoKey, errors.Join(append(tried, err)...))
	}
	if _, err := check(k); err != nil { // the fetcher's promise, checked again
		clear(k)
		return nil, Version{}, false, fmt.Errorf("store: the key a peer gave does not open the shared state: %w", err)
	}
	opts.Logger.Warn("store: the data key was received from a peer", "seal_key_id", keyIDOf(s), "peer_seen_version", seen.N)
	return k, seen, true, nil
}

// askFreshness asks the peers (through opts.FetchKey) for the newest state version they have
// seen, for a replica that has the key but no record of its own of the newest version. The key
// they give must open st, and is then dropped.
func askFreshness(ctx context.Context, opts Options, st *RemoteState) (Version, error) {
	check := stateKeyCheck(st)
	k, seen, err := opts.FetchKey(ctx, func(k []byte) error { _, err := check(k); return err })
	if err != nil {
		return Version{}, err
	}
	defer clear(k)
	if _, err := check(k); err != nil {
		return Version{}, fmt.Errorf("store: the key a peer gave does not open the shared state: %w", err)
	}
	opts.Logger.Info("store: a peer confirmed the newest state version", "peer_seen_version", seen.N)
	return seen, nil
}

// ErrStateDeleted is matched by OpenRemote's error when the shared state does not exist but its
// key shelf holds key copies or a recovery record: the state existed and was deleted.
var ErrStateDeleted = errors.New("store: the shared state's Secrets are gone but its key shelf remains")

// checkNothingShelved is called when r holds no state: it refuses to let a new one be created
// over a deleted one, whose shelf still holds copies of its key or its recovery record. The
// state is read once more if the shelf is not empty, since another replica may have created it
// and shelved its key meanwhile; that state is returned.
func checkNothingShelved(ctx context.Context, r Remote, shelf KeyShelf) (*RemoteState, error) {
	if shelf == nil {
		return nil, nil
	}
	copies, err := shelf.LoadKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: reading the shelf of sealed key copies: %w", err)
	}
	if len(copies.Sealed) == 0 && copies.Recovery == nil {
		return nil, nil
	}
	st, err := r.Load(ctx, nil)
	if err != nil || st != nil {
		return st, err
	}
	return nil, fmt.Errorf("%w (%d sealed key copies, recovery record: %t): the state was deleted; refusing to start a new deployment over it. "+
		"Put back the state's Secrets; to really start over, delete the key shelf Secret as well", ErrStateDeleted, len(copies.Sealed), copies.Recovery != nil)
}

// writeDataKey seals key with s and writes it as data-key.json atomically.
func writeDataKey(root *os.Root, s seal.Sealer, key []byte) error {
	sealed, err := s.Seal(key, []byte(dataKeyAD))
	if err != nil {
		return fmt.Errorf("store: sealing the data key: %w", err)
	}
	return writeKeyFile(root, keyFile{Version: keyFileVersion, Kind: s.Kind(), Sealed: sealed})
}

// shelveKey makes sure the shelf holds a copy of the data key sealed by this replica's seal
// key. A failure is logged, not returned: the replica serves anyway, and only a restart with
// an empty directory would then need a peer.
func (db *DB) shelveKey(ctx context.Context) {
	shelf, id := db.remote.keys, keyIDOf(db.sealer)
	if shelf == nil || id == "" {
		return
	}
	copies, err := shelf.LoadKeys(ctx)
	if err == nil {
		if sealed, ok := copies.Sealed[id]; ok {
			if k, err := db.sealer.Unseal(sealed, []byte(dataKeyAD)); err == nil && string(k) == string(db.dataKey) {
				clear(k)
				return
			}
		}
		var sealed []byte
		if sealed, err = db.sealer.Seal(db.dataKey, []byte(dataKeyAD)); err == nil {
			err = shelf.PutKey(ctx, id, sealed)
		}
	}
	if err != nil {
		db.log.Warn("store: could not keep a sealed copy of the data key on the shelf; a restart with an empty directory will need a peer", "seal_key_id", id, "error", err.Error())
		return
	}
	db.log.Info("store: a copy of the data key sealed to this seal key is on the shelf", "seal_key_id", id)
}

// openHeaderWith authenticates st's header and entries under aead and keyID and returns its
// version.
func openHeaderWith(aead cipher.AEAD, keyID []byte, st *RemoteState) (Version, error) {
	plain, _, err := openAppend(aead, nil, nil, remoteHeaderBucket, remoteHeaderKey, st.Header)
	if err != nil {
		return Version{}, &keyMismatchError{msg: "store: the shared state's header does not authenticate under this data key: " +
			"the state belongs to another deployment, the data key is another deployment's, or the header was changed"}
	}
	if len(plain) != remoteHeaderLen {
		return Version{}, &corruptError{msg: fmt.Sprintf("store: the shared state's header is %d bytes, expected %d", len(plain), remoteHeaderLen)}
	}
	v, _ := decodeVersion(plain[:versionRecLen])
	if found := plain[versionRecLen+sha256.Size:]; string(found) != string(keyID) {
		return Version{}, &keyMismatchError{msg: fmt.Sprintf("store: the shared state was written under data key %x, expected %x", found, keyID)}
	}
	if d := stateDigest(st.Buckets); string(d[:]) != string(plain[versionRecLen:versionRecLen+sha256.Size]) {
		return Version{}, &corruptError{msg: fmt.Sprintf("store: the shared state at version %d does not hold the entries its header names: "+
			"entries were removed, added, or brought back from another state (a shard was replayed or lost)", v.N)}
	}
	return v, nil
}

// RecoverRemote opens the shared state held by r with key, a data key rebuilt by recovery key
// holders, after OpenRemote failed with ErrNoKey. key must open the state's header (otherwise
// the error matches ErrKeyMismatch and nothing is written). data-key.json and the shelf are
// not written yet: the caller records the recovery in the state and then calls [DB.Reseal],
// so that a crash before the reseal leaves a replica that still needs recovery. The DB keeps
// its own copy of key.
func RecoverRemote(ctx context.Context, dir string, s seal.Sealer, r Remote, key []byte, opts Options) (*DB, error) {
	if s == nil || r == nil {
		return nil, errors.New("store: sealer and remote are required")
	}
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("store: recovered data key is %d bytes, expected %d", len(key), dataKeySize)
	}
	given := append([]byte(nil), key...)
	db, err := openDir(dir, opts, func(root *os.Root, opts Options) (*DB, error) {
		return openRemoteLocked(ctx, root, s, r, opts, given)
	})
	if err != nil {
		clear(given)
	}
	return db, err
}

// readLocalKey reads data-key.json for a shared state; a missing file is fs.ErrNotExist.
func readLocalKey(root *os.Root, s seal.Sealer) ([]byte, error) {
	key, err := readDataKey(root, s)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrUnseal) {
		return nil, err
	}
	return key, err
}
