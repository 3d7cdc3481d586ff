// Package api holds the wire types of the Coordinator's two HTTPS/JSON APIs: the client API that
// operators, auditors and the CLI use, and the workload (mesh) API that launchers activate
// through. The server, the Go SDK and the launcher share these types; openapi.json in this
// directory documents them, and a test keeps the two in step.
//
// Byte strings are base64 in JSON (encoding/json's []byte), certificates are PEM strings,
// digests and measurements lowercase hex.
package api

import (
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/recovery"
)

// Routes of the client API (--client-addr).
const (
	PathStatus           = "/api/v1/status"
	PathQuote            = "/api/v1/quote"
	PathManifest         = "/api/v1/manifest"
	PathSecrets          = "/api/v1/secrets"
	PathRootCert         = "/api/v1/certificates/root"
	PathIntermediateCert = "/api/v1/certificates/intermediate"
	PathChain            = "/api/v1/certificates/chain"
)

// Routes of the workload API (--mesh-addr). It also serves PathQuote, so that a launcher can
// verify the Coordinator before it sends anything else.
const (
	PathActivate = "/api/v1/activate"
)

// Coordinator states.
const (
	StateWaitingForManifest = "waiting-for-manifest"
	StateRunning            = "running"
)

// Status is the answer of GET /api/v1/status.
type Status struct {
	State           string `json:"state"`
	Simulation      bool   `json:"simulation"`
	TEE             string `json:"tee"`
	Version         string `json:"version"`
	ManifestVersion int    `json:"manifest_version"`
	ManifestDigest  string `json:"manifest_digest,omitempty"`
	Message         string `json:"message,omitempty"`
	// Activations counts the activations of each workload since the Coordinator's state was
	// created, by workload name, for every manifest version; omitted when there were none.
	Activations map[string]uint64 `json:"activations,omitempty"`
	// AuditHead is the audit log's newest entry, signed by the deployment root; omitted only
	// if the Coordinator could not read its log.
	AuditHead *audit.Head `json:"audit_head,omitempty"`
	// StateVersion counts the changes of the Coordinator's stored state; it never goes
	// back (the store refuses an older state.db). StateHash, lowercase hex, chains it to
	// every earlier version: two states of one version with different hashes have forked.
	StateVersion uint64 `json:"state_version,omitempty"`
	StateHash    string `json:"state_hash,omitempty"`
	// Recovery is the recovery split in force (omitted without one) and, in recovery mode,
	// why and how far it is.
	Recovery *RecoveryStatus `json:"recovery,omitempty"`
}

// Collateral is the Intel collateral that verifies a quote, as raw bytes: the TCB Info and QE
// Identity PCS response bodies exactly as signed, CRLs in DER, issuer chains in PEM.
type Collateral struct {
	TCBInfo               []byte `json:"tcb_info,omitempty"`
	TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain,omitempty"`
	QEIdentity            []byte `json:"qe_identity,omitempty"`
	QEIdentityIssuerChain string `json:"qe_identity_issuer_chain,omitempty"`
	RootCACRL             []byte `json:"root_ca_crl,omitempty"`
	PCKCRL                []byte `json:"pck_crl,omitempty"`
	PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain,omitempty"`
}

// QuoteResponse is the answer of GET /api/v1/quote?nonce=<64 hex>: the Coordinator's quote,
// whose report data binds the public key of the first certificate in CertificateChain, the
// nonce and the audit head (attest.CoordinatorReportData), with the collateral to verify it.
type QuoteResponse struct {
	Quote      []byte     `json:"quote"`
	Collateral Collateral `json:"collateral"`
	// CertificateChain is the Coordinator's TLS certificate then the deployment root, PEM.
	CertificateChain string `json:"certificate_chain"`
	Simulation       bool   `json:"simulation"`
	// AuditHead is the audit log's head when the quote was made, signed by the deployment
	// root; the quote's report data binds it (see attest.CoordinatorReportData).
	AuditHead *audit.Head `json:"audit_head"`
}

// SetManifestResponse is the answer of POST /api/v1/manifest.
type SetManifestResponse struct {
	Version int    `json:"version"`
	Digest  string `json:"digest"`
	// RecoveryShares are the new share files, one per recovery key holder, when this manifest
	// changed the recovery keys or threshold (the data key was split again). They are
	// encrypted to their holders and handed out only here: give each holder its file.
	RecoveryShares []*recovery.Share `json:"recovery_shares,omitempty"`
	// RecoveryWarning says the manifest applied but the recovery split failed; the previous
	// split stays in force until a later manifest change succeeds.
	RecoveryWarning string `json:"recovery_warning,omitempty"`
}

// Secret is one secret's value. Symmetric keys, plain and user-defined secrets have Value;
// certificate secrets have Certificate and PrivateKey (PEM).
type Secret struct {
	Value       []byte `json:"value,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
}

// SecretsResponse is the answer of GET /api/v1/secrets?name=a&name=b.
type SecretsResponse struct {
	Secrets map[string]Secret `json:"secrets"`
}

// SetSecretsRequest is the body of POST /api/v1/secrets: values of user-defined secrets.
type SetSecretsRequest struct {
	Secrets map[string][]byte `json:"secrets"`
}

// ActivationRequest is the body of POST /api/v1/activate.
type ActivationRequest struct {
	Workload string `json:"workload"`
	Instance string `json:"instance"`
	// Quote's report data is SHA-256 of the CSR's public key followed by the TLS exporter value
	// "EXPORTER-cloister-activation" of this connection.
	Quote []byte `json:"quote"`
	// CSR is a DER PKCS #10 certificate request for the workload's key.
	CSR []byte `json:"csr"`
}

// ActivationResponse is what an activated workload receives.
type ActivationResponse struct {
	// CertificateChain is the workload certificate then the intermediate CA, PEM.
	CertificateChain string `json:"certificate_chain"`
	RootCA           string `json:"root_ca"`
	// Files, Env and Argv are rendered from the manifest's templates. Wherever a template used
	// the workload's private key, KeyPlaceholder stands in for it; the launcher substitutes its
	// own key, which never leaves the workload.
	Files          map[string][]byte `json:"files"`
	Env            map[string]string `json:"env"`
	Argv           []string          `json:"argv,omitempty"`
	KeyPlaceholder string            `json:"key_placeholder"`
	// FileKeys are the keys of the workload's protected files, by secret name: the secrets
	// the manifest lists in the workload's file_keys.
	FileKeys        map[string][]byte `json:"file_keys,omitempty"`
	ManifestVersion int               `json:"manifest_version"`
	Simulation      bool              `json:"simulation"`
	// Exec and ReloadSignal are the workload's exec and reload_signal: exec the application
	// instead of supervising it, and the signal it gets after a renewal (empty for none).
	Exec         bool   `json:"exec,omitempty"`
	ReloadSignal string `json:"reload_signal,omitempty"`
	// StateVersion and StateHash are the Coordinator's state version after the activation
	// (as in Status): a launcher refuses a renewal from a state older than one it saw.
	StateVersion uint64 `json:"state_version,omitempty"`
	StateHash    string `json:"state_hash,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong. Code is stable; Message is for people; RequestID matches the
// X-Request-Id header and the Coordinator's log.
type ErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// Error codes.
const (
	CodeBadRequest      = "BAD_REQUEST"
	CodePayloadTooLarge = "PAYLOAD_TOO_LARGE"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeNotReady        = "NOT_READY"
	CodeManifestInvalid = "MANIFEST_INVALID"
	CodeUnknownWorkload = "UNKNOWN_WORKLOAD"
	CodeAttestation     = "ATTESTATION_FAILED"
	CodePolicy          = "POLICY_REJECTED"
	CodeActivationLimit = "ACTIVATION_LIMIT"
	CodeInternal        = "INTERNAL"
)

// RequestIDHeader carries the request ID of every answer.
const RequestIDHeader = "X-Request-Id"

// ManifestVersionHeader carries the manifest version on GET /api/v1/manifest.
const ManifestVersionHeader = "X-Cloister-Manifest-Version"

// The audit log (client API). GET PathAudit?from=N streams the log from entry N (default 1)
// as an export (JSON lines; see package audit) ending with its signed head, to users of the
// manifest. from may be one past the newest entry: the export then holds only the head.
const (
	PathAudit = "/api/v1/audit"
	// AuditContentType is the media type of an audit export.
	AuditContentType = "application/jsonl"
)

// ---- Governance: manifest updates with approval, security-version updates ----

// Routes of the client API for manifest governance.
const (
	// PathManifestProposal: POST proposes an update (body: the manifest), GET shows the pending
	// update, DELETE withdraws it (optionally ?id=<proposal ID>).
	PathManifestProposal = "/api/v1/manifest/proposal"
	// PathManifestApprove: POST approves the pending update (body: ApproveRequest).
	PathManifestApprove = "/api/v1/manifest/proposal/approve"
	// PathManifestSVN: POST raises a package's min_isvsvn (body: UpdateSVNRequest).
	PathManifestSVN = "/api/v1/manifest/svn"
)

// Error codes of governance operations.
const (
	// CodeConflict: the request does not fit the current state: an update is already pending,
	// an approval is for another proposal or manifest, a user approves twice, an SVN is not
	// higher than the current one.
	CodeConflict = "CONFLICT"
	// CodeSignatureInvalid: an approval's signature does not verify with the approver's
	// certificate over the pending update.
	CodeSignatureInvalid = "SIGNATURE_INVALID"
)

// PendingUpdate is a proposed manifest update waiting for approvals: the answer of GET and
// POST PathManifestProposal (GET includes Manifest) and of DELETE (the withdrawn update).
type PendingUpdate struct {
	// ID identifies this proposal: 32 hex digits, random. Approvals sign it.
	ID string `json:"id"`
	// Digest is the SHA-256 of the proposed manifest, hex.
	Digest string `json:"digest"`
	// BaseVersion and BaseDigest are the manifest version it replaces and that manifest's SHA-256.
	BaseVersion int    `json:"base_version"`
	BaseDigest  string `json:"base_digest"`
	// Deployment is the SHA-256 of the deployment root certificate (DER), hex.
	Deployment string `json:"deployment"`
	// Proposer is the user who proposed it.
	Proposer   string    `json:"proposer"`
	ProposedAt time.Time `json:"proposed_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Threshold is how many approvals apply it: the update_threshold of the manifest in force.
	Threshold int `json:"threshold"`
	// Approvals are the approvals so far, in the order they came.
	Approvals []Approval `json:"approvals"`
	// Manifest is the proposed manifest exactly as proposed (base64 in JSON); only in GET.
	Manifest []byte `json:"manifest,omitempty"`
}

// Approval is one updater's approval of a pending update.
type Approval struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
	// Signature is the user's signature over the approval message (see ApprovalMessage).
	Signature []byte `json:"signature"`
}

// ApproveRequest is the body of POST PathManifestApprove.
type ApproveRequest struct {
	// ID and Digest name the pending update approved: its proposal ID and manifest SHA-256.
	ID     string `json:"id"`
	Digest string `json:"digest"`
	// Signature is over ApprovalMessage of that update, made with the key of the caller's
	// client certificate (see ApprovalMessage for the algorithms).
	Signature []byte `json:"signature"`
}

// ApproveResponse is the answer of POST PathManifestApprove.
type ApproveResponse struct {
	// Approvals counts the approvals now given; Threshold is how many apply the update.
	Approvals int `json:"approvals"`
	Threshold int `json:"threshold"`
	// Applied is true when this approval reached the threshold and the update was applied:
	// Version is then the new manifest version and Digest its SHA-256.
	Applied bool   `json:"applied"`
	Version int    `json:"version,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// RecoveryShares and RecoveryWarning are as in SetManifestResponse, for the approval that
	// applied an update which changed the recovery keys: its approver receives the share files.
	RecoveryShares  []*recovery.Share `json:"recovery_shares,omitempty"`
	RecoveryWarning string            `json:"recovery_warning,omitempty"`
}

// UpdateSVNRequest is the body of POST PathManifestSVN: raise the min_isvsvn of Package to SVN.
type UpdateSVNRequest struct {
	Package string `json:"package"`
	SVN     uint16 `json:"svn"`
}

// ApprovalDomain starts every approval message.
const ApprovalDomain = "cloister-manifest-approval-v1"

// ApprovalMessage returns the bytes an approver of p signs: six lines of text, each ending in
// "\n":
//
//	cloister-manifest-approval-v1
//	deployment <SHA-256 of the deployment root certificate, hex>
//	proposal <proposal ID>
//	base-version <version of the manifest replaced, decimal>
//	base-sha256 <SHA-256 of the manifest replaced, hex>
//	manifest-sha256 <SHA-256 of the proposed manifest, hex>
//
// A signature over it binds one proposal of one deployment, against one manifest version, so
// it cannot be replayed for another. ECDSA keys sign the SHA-256 of the message (ASN.1
// signature), RSA keys likewise with PKCS #1 v1.5, Ed25519 keys the message itself.
func (p *PendingUpdate) ApprovalMessage() []byte {
	return fmt.Appendf(nil, "%s\ndeployment %s\nproposal %s\nbase-version %d\nbase-sha256 %s\nmanifest-sha256 %s\n",
		ApprovalDomain, p.Deployment, p.ID, p.BaseVersion, p.BaseDigest, p.Digest)
}
