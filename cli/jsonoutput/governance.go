package jsonoutput

// ManifestPending is printed by `cloister manifest pending`, `cloister manifest propose` (the
// update just proposed) and `cloister manifest cancel` (the update just withdrawn).
type ManifestPending struct {
	// Pending is true when the update described is pending: false for `manifest pending` when
	// none is (every other key is then omitted), and for `manifest cancel`.
	Pending bool `json:"pending"`
	// ID is the proposal's ID, 32 hex digits; approvals sign it.
	ID string `json:"id,omitempty"`
	// Digest is the SHA-256 of the proposed manifest, hex.
	Digest string `json:"digest,omitempty"`
	// BaseVersion and BaseDigest are the manifest version the update replaces and its SHA-256.
	BaseVersion int    `json:"base_version,omitempty"`
	BaseDigest  string `json:"base_digest,omitempty"`
	// Proposer is the user who proposed it; ProposedAt and ExpiresAt are RFC 3339 in UTC.
	Proposer   string `json:"proposer,omitempty"`
	ProposedAt string `json:"proposed_at,omitempty"`
	ExpiresAt  string `json:"expires_at,omitempty"`
	// Threshold is how many approvals apply it.
	Threshold int `json:"threshold,omitempty"`
	// Approvals are the approvals so far, in the order they came; an empty array when none.
	Approvals []ManifestApproval `json:"approvals,omitempty"`
	// Changes is what the update changes against the manifest in force (see [ManifestDiff]);
	// only from `manifest pending`.
	Changes []ManifestChange `json:"changes,omitempty"`
}

// ManifestApproval is one approval of a [ManifestPending].
type ManifestApproval struct {
	// User approved at At (RFC 3339, UTC).
	User string `json:"user"`
	At   string `json:"at"`
}

// ManifestApprove is printed by `cloister manifest approve`.
type ManifestApprove struct {
	// Approvals counts the approvals given so far, this one included; Threshold is how many
	// apply the update.
	Approvals int `json:"approvals"`
	Threshold int `json:"threshold"`
	// Applied is true when this approval applied the update: Version is then the new manifest
	// version and Digest its SHA-256 (both omitted otherwise).
	Applied bool   `json:"applied"`
	Version int    `json:"version,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// RecoveryShares and RecoveryWarning are as in ManifestSet, for the approval that applied
	// an update which named other recovery keys.
	RecoveryShares  []RecoveryShare `json:"recovery_shares,omitempty"`
	RecoveryWarning string          `json:"recovery_warning,omitempty"`
}
