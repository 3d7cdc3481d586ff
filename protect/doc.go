// Package protect holds the protected-file format: a file that the image
// converter encrypts at its original path in the image, and that the
// launcher decrypts in memory after the Coordinator has delivered its key.
//
// The package depends on the standard library only; the launcher imports it.
//
// # Format
//
// A protected file is a header followed by chunks. The header holds the
// magic "CLOISTERPF", the format version, the file's version number, a
// 32-byte salt, the file's path and an HMAC over all of that. The plaintext
// is cut into [ChunkSize] chunks, each sealed with AES-256-GCM under a
// per-file key derived with HKDF-SHA256 from the 32-byte file key, the salt
// and the path. The nonce is the chunk index and the additional data binds
// the header and marks the final chunk. So a wrong key, a file moved to
// another path, a modified header, and reordered, swapped, dropped,
// modified or appended chunks are all detected, each with its own error.
// docs/formats.md describes the format byte by byte.
//
// # Determinism
//
// Converting the same image twice gives the same bytes: [Encrypt] derives
// the salt from the key, the path, the version and the SHA-256 of the
// plaintext ([DeriveSalt]), so only identical inputs share a per-file key,
// and they then produce identical ciphertext. [EncryptWithSalt] takes any
// salt, e.g. a random one.
//
// # Rollback
//
// The version number is authenticated, and the signed enclave manifest
// records it with the SHA-256 of the encrypted file; checking both against
// the manifest keeps an older encrypted copy from being swapped in.
//
// # Errors
//
// Decryption errors wrap one of [ErrFormat], [ErrKey], [ErrPath],
// [ErrTruncated], [ErrCorrupt] and [ErrTooLarge], or an I/O error of the
// reader or writer. Bad arguments give [ErrArgument]. No error contains key
// or plaintext bytes.
package protect
