package jsonoutput

// AuditHead is the newest entry of a Coordinator's audit log, signed by the deployment root:
// in [Status], [Verify], [AuditLog], [AuditVerify] and [BundleVerify]. Save it (as JSON) and
// give it to `cloister audit verify --seen` later: a log that does not extend it is refused.
type AuditHead struct {
	// Seq is the number of the newest entry (entries are numbered from 1).
	Seq uint64 `json:"seq"`
	// Hash is the SHA-256 of that entry, 64 hex digits.
	Hash string `json:"hash"`
	// Time is when the head was signed, RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// Signature is the deployment root key's signature, base64.
	Signature []byte `json:"signature"`
}

// AuditEntry is one entry of the audit log, in [AuditLog]; `cloister audit log --follow
// --output json` prints one per line instead, as entries arrive.
type AuditEntry struct {
	// Seq numbers the entry, from 1 without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the change was made, RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// Kind says what changed: coordinator.start, manifest.set, manifest.propose,
	// manifest.approve, manifest.apply, manifest.cancel, manifest.update-svn, secret.write,
	// recovery, activations (counts of one workload in one hour), or a kind of a newer
	// Coordinator.
	Kind string `json:"kind"`
	// Actor is the manifest user who made the change, "anonymous" for the first manifest, or
	// "coordinator".
	Actor string `json:"actor"`
	// Fields describe the change (names, hashes, counts; never a secret value); an empty
	// object when there are none.
	Fields map[string]string `json:"fields"`
	// Prev is the hash of the entry before, 64 hex digits (zeros for entry 1).
	Prev string `json:"prev"`
}

// AuditLog is printed by `cloister audit log`: the entries read, after the whole export
// verified with the pinned deployment root.
type AuditLog struct {
	// Entries are in order; an empty array when the log has none from --from on.
	Entries []AuditEntry `json:"entries"`
	// Head is the signed head the export ended with.
	Head AuditHead `json:"head"`
}

// AuditVerify is printed by `cloister audit verify`. When valid is false the exit status is
// non-zero and problem names the bad entry.
type AuditVerify struct {
	// Valid is true when the export is one unbroken log with a head signed by the root (and
	// extends the --seen head, if given).
	Valid bool `json:"valid"`
	// Problem says why the export was refused, naming the entry and line; omitted when valid.
	Problem string `json:"problem,omitempty"`
	// First and Last are the numbers of the export's first and last entries; omitted when
	// not valid.
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last,omitempty"`
	// Entries counts the entries; Kinds counts them by kind. Zero and empty when not valid.
	Entries uint64            `json:"entries"`
	Kinds   map[string]uint64 `json:"kinds"`
	// Head is the export's signed head; null when not valid.
	Head *AuditHead `json:"head"`
	// SeenChecked is true when --seen was given and the log passes through that head.
	SeenChecked bool `json:"seen_checked"`
	// RootFingerprint is the SHA-256 of the --root certificate's DER, hex.
	RootFingerprint string `json:"root_sha256"`
}

// BundleVerify is printed by `cloister bundle verify`. When verified is false the exit status
// is non-zero and a check says why.
type BundleVerify struct {
	// Verified is true when no check failed (skipped checks do not fail it).
	Verified bool `json:"verified"`
	// At is the instant the bundle was verified at, RFC 3339 UTC: --at, or when the bundle
	// was made.
	At string `json:"at"`
	// Coordinator is the address the bundle was made for, as recorded in it.
	Coordinator string `json:"coordinator"`
	// MadeAt is when the bundle was made, RFC 3339 UTC.
	MadeAt string `json:"made_at"`
	// Checks are the checks in the order they ran.
	Checks []BundleCheck `json:"checks"`
	// ManifestVersion and ManifestDigest are the manifest the bundle records (0 and omitted
	// before the first manifest).
	ManifestVersion int    `json:"manifest_version"`
	ManifestDigest  string `json:"manifest_digest,omitempty"`
	// AuditHead is the signed audit head the bundle's quote binds.
	AuditHead AuditHead `json:"audit_head"`
	// MREnclave and MRSigner are the Coordinator enclave's identity, hex; omitted when the
	// quote did not verify.
	MREnclave string `json:"mrenclave,omitempty"`
	MRSigner  string `json:"mrsigner,omitempty"`
	// Simulation is true when the bundle is of a simulated (insecure) Coordinator.
	Simulation bool `json:"simulation"`
}

// BundleCheck is one check of [BundleVerify].
type BundleCheck struct {
	// Name is one of certificates, quote, policy, audit_head, report_data, manifest_file,
	// audit_log.
	Name string `json:"name"`
	// Result is ok, failed or skipped.
	Result string `json:"result"`
	// Detail says what was found, or why the check failed or was skipped.
	Detail string `json:"detail"`
}
