// Package api holds the wire types of the Coordinator's two HTTPS/JSON APIs: the client API that
// operators, auditors and the CLI use, and the workload (mesh) API that launchers activate
// through. The server, the Go SDK and the launcher share these types; openapi.json in this
// directory documents them, and a test keeps the two in step.
//
// Byte strings are base64 in JSON (encoding/json's []byte), certificates are PEM strings,
// digests and measurements lowercase hex.
package api

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
// whose report data is SHA-256 of the public key of the first certificate in CertificateChain
// followed by the nonce, with the collateral to verify it.
type QuoteResponse struct {
	Quote      []byte     `json:"quote"`
	Collateral Collateral `json:"collateral"`
	// CertificateChain is the Coordinator's TLS certificate then the deployment root, PEM.
	CertificateChain string `json:"certificate_chain"`
	Simulation       bool   `json:"simulation"`
}

// SetManifestResponse is the answer of POST /api/v1/manifest.
type SetManifestResponse struct {
	Version int    `json:"version"`
	Digest  string `json:"digest"`
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
