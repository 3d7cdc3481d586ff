package api

import "github.com/cloister-dev/cloister/recovery"

// ---- Recovery by key holders ----

// PathRecovery is the recovery route of the client API. GET ?nonce=<64 hex> answers a
// Coordinator in recovery mode's challenge (RecoveryChallenge); POST hands it a holder's share
// (body: a recovery.Submission; answer: RecoveryResponse). A running Coordinator answers both
// with CONFLICT.
const PathRecovery = "/api/v1/recovery"

// StateRecovery is the state of a Coordinator that cannot unseal its state and waits for its
// recovery key holders. It serves only PathStatus and PathRecovery.
const StateRecovery = "recovery"

// CodeRecoveryMode answers every other request of a Coordinator in recovery mode (HTTP 503).
const CodeRecoveryMode = "RECOVERY_MODE"

// RecoveryStatus describes recovery in a status answer: the split in force, and in recovery
// mode why the Coordinator is in it and which holders' shares it has.
type RecoveryStatus struct {
	// Reason says why the Coordinator is in recovery mode; empty while it runs.
	Reason string `json:"reason,omitempty"`
	// Possible is false when the state has no recovery record: nothing can recover it.
	Possible   bool     `json:"possible"`
	Deployment string   `json:"deployment,omitempty"`
	Generation string   `json:"generation,omitempty"`
	Threshold  int      `json:"threshold,omitempty"`
	Holders    []string `json:"holders,omitempty"`
	// Received names the holders whose shares a Coordinator in recovery mode accepted so far.
	Received []string `json:"received,omitempty"`
}

// RecoveryChallenge is the answer of GET PathRecovery?nonce=: the recovery session and split,
// and a quote whose report data is recovery.ReportData(key of Certificate, the challenge's
// Binding, nonce), with the collateral to verify it.
type RecoveryChallenge struct {
	Challenge recovery.Challenge `json:"challenge"`
	Quote     []byte             `json:"quote"`
	// Collateral verifies Quote.
	Collateral Collateral `json:"collateral"`
	// Certificate is the Coordinator's TLS certificate in recovery mode (self-signed, made at
	// start: the deployment root is sealed away), PEM.
	Certificate string   `json:"certificate"`
	Simulation  bool     `json:"simulation"`
	Reason      string   `json:"reason"`
	Received    []string `json:"received"`
}

// RecoveryResponse is the answer of POST PathRecovery: the share of Holder was accepted;
// Received holders' shares are in, Threshold are needed; Recovered is true when this share
// completed the recovery and the Coordinator runs again.
type RecoveryResponse struct {
	Holder    string   `json:"holder"`
	Received  []string `json:"received"`
	Threshold int      `json:"threshold"`
	Recovered bool     `json:"recovered"`
}
