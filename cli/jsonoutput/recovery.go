package jsonoutput

// RecoveryStatus is the recovery part of a status: the split of the data key in force and, in
// recovery mode, why the Coordinator is in it and whose shares it has.
type RecoveryStatus struct {
	// Reason says why the Coordinator is in recovery mode; omitted while it runs.
	Reason string `json:"reason,omitempty"`
	// Possible is false when nothing can recover the state (no recovery key holders).
	Possible bool `json:"possible"`
	// Deployment is the SHA-256 of the deployment root certificate, hex.
	Deployment string `json:"deployment,omitempty"`
	// Generation names the split in force: share files of another generation are refused.
	Generation string `json:"generation,omitempty"`
	// Threshold is how many holders' shares recover the state; Holders are all of them.
	Threshold int      `json:"threshold,omitempty"`
	Holders   []string `json:"holders,omitempty"`
	// Received names the holders whose shares a Coordinator in recovery mode accepted.
	Received []string `json:"received,omitempty"`
}

// RecoveryShare is one share file a manifest change made (format
// cloister-recovery-share-v1): one holder's share of the data key, encrypted to that holder.
// The CLI also writes each to a file of --recovery-shares.
type RecoveryShare struct {
	// Format is cloister-recovery-share-v1.
	Format string `json:"format"`
	// Deployment is the SHA-256 of the deployment root certificate, hex.
	Deployment string `json:"deployment"`
	// Generation names the split; a later split refuses this share.
	Generation string `json:"generation"`
	// Holder, Index, Threshold and Holders: whose share, its number, k and n.
	Holder    string `json:"holder"`
	Index     int    `json:"index"`
	Threshold int    `json:"threshold"`
	Holders   int    `json:"holders"`
	// KeyDigest is the SHA-256 of the holder's public key (PKIX DER), hex.
	KeyDigest string `json:"key_digest"`
	// Algorithm is RSA-OAEP-3072-SHA256 or HPKE-X25519-HKDF-SHA256-AES-256-GCM.
	Algorithm string `json:"algorithm"`
	// Ciphertext is the encrypted share.
	Ciphertext []byte `json:"ciphertext"`
}

// Recover is printed by `cloister recover`, `cloister recover submit` and `cloister recover
// status`.
type Recover struct {
	// Coordinator is the address of the Coordinator in recovery mode.
	Coordinator string `json:"coordinator"`
	// Session names its recovery session.
	Session string `json:"session"`
	// Holder is the holder whose share was submitted; omitted by `recover status`.
	Holder string `json:"holder,omitempty"`
	// Received are the holders whose shares are in, Threshold how many are needed.
	Received  []string `json:"received"`
	Threshold int      `json:"threshold"`
	// Recovered is true when the Coordinator recovered its state and runs again.
	Recovered bool `json:"recovered"`
	// Recovery is the Coordinator's recovery status (reason, split, holders).
	Recovery RecoveryStatus `json:"recovery"`
	// MREnclave and MRSigner are the verified Coordinator enclave's identity, hex.
	MREnclave string `json:"mrenclave"`
	MRSigner  string `json:"mrsigner"`
}

// RecoverOffline is printed by `cloister recover --offline` and `cloister recover challenge`:
// the file written and what it is for.
type RecoverOffline struct {
	// File is the path written: a signed submission, or an exported challenge.
	File string `json:"file"`
	// Session is the recovery session the file belongs to.
	Session string `json:"session"`
	// Holder is the holder who signed (for a submission); omitted for a challenge.
	Holder string `json:"holder,omitempty"`
	// Deployment and Generation name what is being recovered.
	Deployment string `json:"deployment"`
	Generation string `json:"generation"`
}
