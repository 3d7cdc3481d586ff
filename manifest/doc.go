// Package manifest holds the deployment manifest: the one JSON document that says which
// enclaves may run as which workloads, what configuration and secrets each receives, and
// who may operate the deployment. The Coordinator enforces it; docs/manifest.md is the
// user's reference.
//
// # Parsing
//
// [Parse] decodes a document strictly (no unknown or duplicate keys, no trailing data, at
// most [MaxSize] bytes), applies defaults and runs [Manifest.Validate], which reports every
// problem at once as [FieldError] values located by JSON path, such as
//
//	$.workloads.server.package: unknown package "webx"; defined packages: db, web
//
// A parsed Manifest keeps the submitted bytes: it is stored and hashed as submitted
// ([Manifest.Bytes], [Manifest.Digest]), never re-encoded.
//
// # Templates
//
// Environment values, files and arguments of a workload are Go text/template templates over
// .Secrets.NAME (with .Raw, .Hex, .Base64, and .Cert, .Key, .Public for certificates),
// .Workload (.Name, .Instance, .SPIFFEID, .Cert, .Key, .Chain) and .CA (.Root,
// .Intermediate). Parse compiles each template once and checks it statically and by a dry
// run with placeholder values; [Manifest.Render] then fills them for one workload instance
// and [Manifest.SecretsUsedBy] tells which secrets that needs. The template language is
// restricted (no {{range}}, {{with}}, {{define}}, no string-building functions) so that the
// secrets a template reads are known from its parse tree and its output and memory are
// bounded.
//
// # Compatibility
//
// [Schema] is the JSON Schema of the document, kept in step with these types by tests.
// New features arrive as new optional keys, so a valid manifest stays valid and keeps its
// meaning; [Diff] compares two manifests key by key.
//
// # Concurrency
//
// A Manifest returned by Parse is immutable and safe for concurrent use.
package manifest
