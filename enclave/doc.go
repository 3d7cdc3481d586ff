// Package enclave holds the enclave manifest: the per-image description of a
// confidential container that the image converter writes to
// /cloister/enclave.json, signs SGX-style, and that cloister-launch enforces
// before it executes the original entrypoint.
//
// The package is imported by the small static launcher, so it depends on the
// standard library and [github.com/cloister-dev/cloister/protect] only.
//
// # The signed file
//
// A signed enclave manifest is one JSON object,
//
//	{"manifest": {…}, "signer": {"modulus": "<hex>", "exponent": 3}, "signature": "<hex>"}
//
// whose signature (RSA-3072, public exponent 3, PKCS #1 v1.5 with SHA-256)
// covers the exact bytes of the "manifest" value as they appear in the file.
// [Parse] verifies those bytes before it decodes them, and never verifies a
// re-encoding; [Sign] writes canonical bytes, so signing the same manifest
// with the same key always gives the same file. docs/formats.md describes the
// format byte by byte.
//
// # Decoding rules
//
// Every JSON object is decoded strictly: unknown fields, duplicate keys, keys
// that match a field only case-insensitively, and data after the top-level
// value are errors. The input is bounded by [MaxSize]. Errors returned by
// [Parse] and [ParseKey] wrap exactly one of [ErrTooLarge], [ErrMalformed],
// [ErrSignature] and [ErrInvalid].
//
// # Measurement
//
// The signer's identity is [MRSigner], computed as SGX computes MRSIGNER. In
// simulation mode the launcher computes its own MRENCLAVE with
// [SimMRENCLAVE]; the simulated Coordinator uses [SimMeasurement] with
// [SimCoordinatorTag].
//
// # Trusted files
//
// [Manifest.VerifyFiles] checks every trusted and protected file under a root
// directory in parallel; [HashReader] and [HashFile] are the hashing
// primitives the converter shares with it.
package enclave
