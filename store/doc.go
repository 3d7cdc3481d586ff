// Package store is the Coordinator's crash-safe, encrypted embedded store.
//
// A store is a directory holding three files:
//
//   - state.db, a bbolt database (mode 0600) whose values are encrypted;
//   - data-key.json, the store's 32-byte random data key sealed by a
//     [seal.Sealer]: {"version":1,"kind":"<sealer kind>","sealed":"<base64>"}.
//     The JSON object leaves room for recovery key shares to be added later;
//   - state-version ([VersionFile]), the newest state version the store
//     reached, encrypted under the data key: Open refuses a state.db older
//     than it ([ErrRolledBack]; see version.go and [DB.Version]).
//
// # Encryption
//
// Every value is encrypted with AES-256-GCM under the data key with a random
// 96-bit nonce and stored as
//
//	0x01 (format version) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
//
// with additional data "cloister-store-v1\x00" + bucket + "\x00" + key, so
// a value moved to another bucket or key fails to decrypt. Bucket and key
// names are NOT encrypted: never put secrets in them. Decryption failures
// are reported as [ErrCorrupt] with the bucket and key, never as garbage.
// Random nonces limit a data key to about 2^32 writes.
//
// A check record (an encrypted known value in an internal bucket) and the
// data key's ID (a truncated SHA-256 of the key, with a CRC) let [Open]
// tell a key file of another store ([ErrKeyMismatch]) from a damaged file
// ([ErrCorrupt]).
//
// # Crash safety
//
// Every committed transaction is fsynced by bbolt before Update or Batch
// returns. data-key.json is written to a temporary file, fsynced, renamed
// into place and the directory fsynced. A new store is built as a temporary
// database and renamed to state.db only after the key file is durable, so
// state.db never exists without its key. If state.db exists, Open never
// writes either file unless both are valid: a missing or foreign key file,
// a different sealer, a wrong data key or a damaged state.db is an error
// that names the problem, and both files are left byte-for-byte unchanged.
//
// # Damage
//
// bbolt trusts its file: a damaged page makes it panic on an assertion,
// fault, or read garbage. So before bbolt maps state.db, Open reads the
// whole file through bounds-checked slices: both meta pages, every page in
// use (type, id, element table, key order, overflow, used once), the
// freelist, and every value's authentication. Damage anywhere in use is an
// error matching [ErrCorrupt] that names the page and what was expected
// and found; damage to free pages or beyond the high-water mark is
// harmless and ignored. A damaged meta page is the exception, as in bbolt:
// the other one is used (crash recovery relies on it) and a warning is
// logged; if the damaged page was the newer one, the last commit is lost,
// and Open refuses the state as rolled back ([ErrRolledBack]) unless that
// commit was never acknowledged. Damage that happens while the store is open is met by
// transactions: bbolt's panics and faults become an error matching
// [ErrCorrupt] for that transaction, and after a write transaction met
// damage, later writes are refused. Open costs one read of the file and
// one decryption per value: about 4 ms for 10,000 100-byte values.
//
// # Concurrency
//
// One process at a time may open a directory: Open takes an exclusive lock
// on it and returns [ErrLocked] after [Options.LockTimeout]. Within the
// process a [DB] is safe for concurrent use; writers are serialized by bbolt
// and [DB.Batch] groups concurrent writers into one commit. A [Tx] must only
// be used inside the function it was passed to.
package store
