package api

import "github.com/cloister-dev/cloister/audit"

// PathQuoteEpoch is the Coordinator's shared quote for the current epoch, on both APIs:
// launchers verify the Coordinator with it on the connection they activate on, without a quote
// of their own. Auditors and `cloister verify` ask PathQuote with a nonce instead.
const PathQuoteEpoch = "/api/v1/quote/epoch"

// EpochQuoteResponse is the answer of GET PathQuoteEpoch: the Coordinator's quote for Epoch
// (attest.EpochAt of when it was made), whose report data binds the public key of the first
// certificate in CertificateChain, the epoch and the audit head
// (attest.CoordinatorEpochReportData), with the collateral to verify it. The Coordinator makes
// one per epoch and gives the same answer to everyone in it.
type EpochQuoteResponse struct {
	Quote      []byte     `json:"quote"`
	Collateral Collateral `json:"collateral"`
	// CertificateChain is the Coordinator's TLS certificate then the deployment root, PEM.
	CertificateChain string `json:"certificate_chain"`
	Simulation       bool   `json:"simulation"`
	// AuditHead is the audit log's head when the quote was made, signed by the deployment
	// root; the quote's report data binds it.
	AuditHead *audit.Head `json:"audit_head"`
	// Epoch is the epoch the quote was made in: whole attest.EpochLength since the Unix epoch,
	// by the Coordinator's clock.
	Epoch uint64 `json:"epoch"`
}
