// Package jsonoutput holds the documents the cloister command line prints with --output json,
// as Go types that scripts and tests decode into. Each type's comment names the commands that
// print it; docs/cli/json.md is generated from these types and their comments.
//
// The package depends on the standard library only, so importing it to read the CLI's output
// costs nothing. It holds types, no logic: the CLI (internal/cli) fills them from the SDK's and
// the converter's results, and a change to those results does not change what scripts see
// until it is made here.
//
// # Versions and stability
//
// The documents are a published contract; this is version 1 ([SchemaVersion]). Within a version they
// change only by addition: a new key may appear in an object, and a new value in a field whose
// comment lists its values (such as [ErrorBody.Code]); no key is removed or renamed and no
// value changes its type or meaning. Consumers must therefore ignore keys they do not know.
// Keys documented as null or omitted in some cases are always decoded with that in mind.
//
// A change that is not an addition makes a new version: new types in this package, printed for
// a new --output value, while --output json keeps printing this version. Fields are never
// reused for a different meaning.
//
// # Errors
//
// In JSON mode a command prints exactly one JSON document on standard output: its result, or,
// when it fails before it has one, an [Error]. The exit status is non-zero on failure either
// way, and standard error gets the same message as text, for people. Some results report a
// failure themselves and are printed with a non-zero exit status: a [QuoteVerify] whose
// verified is false, a [ManifestCheck] whose valid is false, an [ImageInspect] whose verified
// is false after --verify.
package jsonoutput

// SchemaVersion is the version of the documents in this package, printed by --output json.
const SchemaVersion = 1
