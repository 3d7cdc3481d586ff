package jsonoutput

// Status is printed by `cloister status`: the Coordinator's state.
type Status struct {
	// State is waiting-for-manifest or running.
	State string `json:"state"`
	// Simulation is true when the Coordinator runs on a simulated SGX platform (not secure).
	Simulation bool `json:"simulation"`
	// TEE names the trusted execution environment: sgx, or sgx-simulation.
	TEE string `json:"tee"`
	// Version is the Coordinator's software version.
	Version string `json:"version"`
	// ManifestVersion counts the manifests set so far; 0 before the first.
	ManifestVersion int `json:"manifest_version"`
	// ManifestDigest is the SHA-256 of the current manifest, hex; omitted before the first.
	ManifestDigest string `json:"manifest_digest,omitempty"`
	// Message is a note for people, such as the simulation warning; omitted when empty.
	Message string `json:"message,omitempty"`
	// Activations counts the activations of each workload, by workload name, since the
	// Coordinator's state was created (workloads of earlier manifest versions included); an
	// empty object when there were none. Counts of workloads without max_activations may lag
	// by a few seconds after a Coordinator crash.
	Activations map[string]uint64 `json:"activations"`
	// AuditHead is the audit log's newest entry, signed by the deployment root; null if the
	// Coordinator did not send one.
	AuditHead *AuditHead `json:"audit_head"`
	// StateVersion counts the changes of the Coordinator's stored state; it never goes back
	// (the Coordinator refuses an older state.db). StateHash, hex, chains it to every earlier
	// version. Omitted by Coordinators before state versions.
	StateVersion uint64 `json:"state_version,omitempty"`
	StateHash    string `json:"state_hash,omitempty"`
	// Recovery is the recovery split in force and, in recovery mode (state "recovery"), why
	// and how far it is; omitted without a split.
	Recovery *RecoveryStatus `json:"recovery,omitempty"`
}

// Certificates is printed by `cloister certificate root|intermediate|chain`.
type Certificates struct {
	// Certificates are in the order of the PEM text: for chain, the intermediate then the root.
	Certificates []Certificate `json:"certificates"`
}

// Certificate is one certificate of [Certificates].
type Certificate struct {
	// Subject and Issuer are distinguished names, as RFC 2253 text.
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// NotBefore and NotAfter bound the validity, RFC 3339 in UTC.
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	// SHA256 is the SHA-256 of the certificate's DER, hex: its fingerprint.
	SHA256 string `json:"sha256"`
	// Simulation is true for a certificate of a simulated deployment.
	Simulation bool `json:"simulation"`
	// PEM is the certificate itself.
	PEM string `json:"pem"`
}

// Verify is printed by `cloister verify`: the verified Coordinator's identity and what was
// pinned.
type Verify struct {
	// Coordinator is the address that was verified.
	Coordinator string `json:"coordinator"`
	// Verified is always true: a failed verification prints an [Error].
	Verified bool `json:"verified"`
	// Simulation is true when the Coordinator runs on a simulated SGX platform (not secure).
	Simulation bool `json:"simulation"`
	// IdentityChecked is false when no expected identity was given
	// (--insecure-accept-any-enclave): compare mrenclave with the one you expect.
	IdentityChecked bool `json:"identity_checked"`
	// MREnclave and MRSigner are the Coordinator enclave's measurement and signer, hex.
	MREnclave string `json:"mrenclave"`
	MRSigner  string `json:"mrsigner"`
	// ISVProdID and ISVSVN are the Coordinator enclave's product ID and security version.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// TCBStatus is the platform's TCB status, such as UpToDate or SWHardeningNeeded.
	TCBStatus string `json:"tcb_status"`
	// AdvisoryIDs are the Intel security advisories that apply to the platform; an empty array
	// when none do.
	AdvisoryIDs []string `json:"advisory_ids"`
	// CollateralExpiry is when the collateral used needs its next update, RFC 3339 in UTC.
	CollateralExpiry string `json:"collateral_expiry"`
	// RootFingerprint is the SHA-256 of the deployment root certificate's DER, hex.
	RootFingerprint string `json:"root_sha256"`
	// PinnedAt is the file the deployment root was pinned in; omitted with --from-bundle,
	// which pins nothing.
	PinnedAt string `json:"pinned_at,omitempty"`
	// AuditHead is the audit log head that the Coordinator's quote binds, its signature
	// checked with the deployment root. It is saved beside the pinned root, and `cloister
	// audit log` then requires the log to extend it.
	AuditHead AuditHead `json:"audit_head"`
}

// ManifestSet is printed by `cloister manifest set` and `cloister manifest update`.
type ManifestSet struct {
	// Version is the manifest version now in force, from 1.
	Version int `json:"version"`
	// Digest is the SHA-256 of the manifest as sent, hex.
	Digest string `json:"digest"`
	// RecoveryShares are the share files of a new split of the data key, when this change
	// named other recovery keys; omitted otherwise. Each is encrypted to its holder.
	RecoveryShares []RecoveryShare `json:"recovery_shares,omitempty"`
	// RecoveryWarning says the manifest applied but the new split failed; omitted otherwise.
	RecoveryWarning string `json:"recovery_warning,omitempty"`
}

// ManifestCheck is printed by `cloister manifest check`; the exit status is 1 when valid is
// false.
type ManifestCheck struct {
	// Valid is true when the manifest has no problem.
	Valid bool `json:"valid"`
	// Digest is the SHA-256 of the file, hex; omitted when it is not valid.
	Digest string `json:"digest,omitempty"`
	// Problems lists every problem found; an empty array when valid.
	Problems []Problem `json:"problems"`
}

// Problem is one problem of a manifest.
type Problem struct {
	// Path is the JSON path of the offending value, such as $.workloads.web.package; $ for
	// the whole document.
	Path string `json:"path"`
	// Message says what was expected and what was found.
	Message string `json:"message"`
}

// ManifestDiff is printed by `cloister manifest diff`: the values that differ, in the order of
// their paths; an empty array when none does.
type ManifestDiff []ManifestChange

// ManifestChange is one difference between two manifests.
type ManifestChange struct {
	// Path is the JSON path of the value.
	Path string `json:"path"`
	// Kind is added (only in the new manifest), removed (only in the old) or changed.
	Kind string `json:"kind"`
}

// Secrets is printed by `cloister secret get NAME...`: the secrets asked for, by name.
type Secrets map[string]Secret

// Secret is one secret's value: Value for symmetric keys, plain and user-defined secrets;
// Certificate and PrivateKey for certificate secrets.
type Secret struct {
	// Value is the secret's bytes, base64 in JSON; omitted for certificates.
	Value []byte `json:"value,omitempty"`
	// Certificate is the certificate, PEM; omitted for other secrets.
	Certificate string `json:"certificate,omitempty"`
	// PrivateKey is the certificate's private key, PEM; omitted for other secrets.
	PrivateKey string `json:"private_key,omitempty"`
}

// BenchActivate is printed by `cloister bench activate`. Times are in milliseconds.
type BenchActivate struct {
	// Activations counts the activations that succeeded; Errors those that failed.
	Activations int `json:"activations"`
	Errors      int `json:"errors"`
	// Concurrency is the number of concurrent workers.
	Concurrency int `json:"concurrency"`
	// Seconds is the wall time of the run; PerSecond the activations per second.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// P50ms, P90ms and P99ms are latency percentiles, MaxMs the slowest activation.
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// CoordinatorMB is the Coordinator's resident memory in MiB after the run; omitted
	// without --metrics.
	CoordinatorMB float64 `json:"coordinator_rss_mib,omitempty"`
	// FirstError is the first activation error; omitted when there was none.
	FirstError string `json:"first_error,omitempty"`
}
