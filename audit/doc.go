// Package audit is the Coordinator's tamper-evident log: every change of its state is an
// [Entry] holding the hash of the one before, and the newest entry's hash, the [Head], is signed
// with the deployment root's key. A client that once saw a signed head can later check that the
// log it is shown extends that head: an entry changed, dropped, reordered or inserted anywhere
// before it changes every hash after it.
//
// The package holds the format only: hashing, chaining, signing heads, and the export that
// `cloister audit verify` checks offline with nothing but the deployment's root certificate.
// Where entries are kept, and which changes become which entries, is the Coordinator's.
//
// Entries never hold secret values: the Coordinator records names, users and counts.
package audit
