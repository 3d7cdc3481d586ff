package verify

import "errors"

// Check names one step of quote or collateral verification. [CheckError] carries it, so callers
// can tell which step failed without parsing messages. The values are stable.
type Check string

// The checks, in the order Verify runs them (see the package documentation).
const (
	CheckQuoteFormat           Check = "quote_format"             // the quote does not parse
	CheckPCKChain              Check = "pck_chain"                // PCK chain shape, signatures, pinned root key
	CheckPCKCertificate        Check = "pck_certificate"          // PCK leaf name, SGX extension, CA type
	CheckRootCACRL             Check = "root_ca_crl"              // root CA CRL issuer and signature
	CheckPCKCRL                Check = "pck_crl"                  // PCK CRL issuer chain, issuer and signature
	CheckRevocation            Check = "revocation"               // a certificate is on a CRL
	CheckTCBInfoIssuerChain    Check = "tcb_info_issuer_chain"    // TCB Signing chain to the pinned root key
	CheckTCBInfoSignature      Check = "tcb_info_signature"       // signature over the exact TCB Info bytes
	CheckQEIdentityIssuerChain Check = "qe_identity_issuer_chain" // QE Identity signing chain
	CheckQEIdentitySignature   Check = "qe_identity_signature"    // signature over the exact QE Identity bytes
	CheckTCBInfoMatch          Check = "tcb_info_match"           // TCB Info FMSPC and PCE-ID equal the PCK certificate's
	CheckQEVendorID            Check = "qe_vendor_id"             // the quote names Intel's QE
	CheckQEReportSignature     Check = "qe_report_signature"      // QE report signed by the PCK key
	CheckQEReportData          Check = "qe_report_data"           // QE report data binds the attestation key
	CheckQEIdentity            Check = "qe_identity"              // QE report matches the QE Identity
	CheckQuoteSignature        Check = "quote_signature"          // header and body signed by the attestation key
	CheckTCBLevel              Check = "tcb_level"                // platform and QE TCB levels
	CheckCollateral            Check = "collateral"               // required collateral missing or outside its validity
)

// Sentinel errors, wrapped by a [CheckError] (match them with errors.Is).
var (
	// ErrUntrustedRoot is returned when a certificate chain does not end in a self-signed
	// certificate carrying the pinned root key: for example a simulated quote given to a
	// Verifier that pins Intel's root. Check: CheckPCKChain or an issuer-chain check.
	ErrUntrustedRoot = errors.New("chain does not end in the pinned root key")

	// ErrRevoked is returned when a CRL lists the PCK certificate, its CA or a collateral
	// signing certificate. Check: CheckRevocation.
	ErrRevoked = errors.New("certificate revoked")

	// ErrInvalidSignature is returned when an ECDSA signature over the quote, the QE report,
	// TCB Info, QE Identity, a CRL or a certificate does not verify.
	ErrInvalidSignature = errors.New("signature does not verify")

	// ErrTCBLevelNotSupported is returned when no TCB Info level is at or below the PCK
	// certificate's TCB, or no QE Identity level at or below the QE's ISVSVN (Intel's
	// TCB_NOT_SUPPORTED). Check: CheckTCBLevel.
	ErrTCBLevelNotSupported = errors.New("TCB level not supported")

	// ErrCollateralMissing is returned when TCB Info, QE Identity or the chain that signs
	// one of them is absent. Verify returns it only after every check that could run without
	// the missing items passed. Check: CheckCollateral.
	ErrCollateralMissing = errors.New("collateral missing")

	// ErrCollateralExpired is returned by [Verifier.CheckCollateral] (never by Verify, which
	// reports expiry in [Platform.CollateralExpired]) when an item is outside its validity.
	ErrCollateralExpired = errors.New("collateral outside its validity")

	// ErrInvalidPolicy is returned by [Policy.Check] and [Policy.Validate] for a policy that
	// cannot be applied, such as one naming no enclave identity.
	ErrInvalidPolicy = errors.New("invalid policy")
)

// CheckError reports the verification check that failed and why. Err says what was expected
// and what was found and may wrap one of the sentinel errors of this package.
type CheckError struct {
	Check Check // the check that failed
	Err   error // what was expected and what was found
}

// Error returns "sgx quote verification: <check>: <reason>".
func (e *CheckError) Error() string {
	return "sgx quote verification: " + string(e.Check) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

func fail(c Check, err error) *CheckError { return &CheckError{Check: c, Err: err} }
