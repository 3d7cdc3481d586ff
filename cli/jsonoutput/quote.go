package jsonoutput

// QuoteInspect is printed by `cloister quote inspect`: the fields of an SGX quote, none of
// them verified. Hex values are lowercase.
type QuoteInspect struct {
	// Version is the quote format version, 3.
	Version uint16 `json:"version"`
	// AttKeyType is the attestation key type, 2 for ECDSA-256 with P-256.
	AttKeyType uint16 `json:"att_key_type"`
	// QESVN and PCESVN are the security versions of the Quoting and Provisioning Certification
	// Enclaves.
	QESVN  uint16 `json:"qe_svn"`
	PCESVN uint16 `json:"pce_svn"`
	// QEVendorID is the Quoting Enclave's vendor ID, hex.
	QEVendorID string `json:"qe_vendor_id"`
	// UserData is the header's user data, hex.
	UserData string `json:"user_data"`
	// Enclave is the report of the quoted enclave.
	Enclave QuoteReport `json:"enclave"`
	// QEReport is the Quoting Enclave's own report.
	QEReport QuoteReport `json:"qe_report"`
	// QEAuthDataLen is the length of the QE authentication data, in bytes.
	QEAuthDataLen int `json:"qe_auth_data_len"`
	// CertDataType is the certification data type, 5 for a PCK certificate chain.
	CertDataType uint16 `json:"cert_data_type"`
	// PCK is the platform identity from the PCK certificate.
	PCK QuotePCK `json:"pck"`
	// TrailingBytes counts the bytes after the quote in the file, which were ignored.
	TrailingBytes int `json:"trailing_bytes"`
	// AttestationKey is the attestation public key, hex (X and Y).
	AttestationKey string `json:"attestation_key"`
}

// QuoteReport is an SGX report body. Hex values are lowercase.
type QuoteReport struct {
	// MREnclave and MRSigner are the enclave's measurement and signer, hex.
	MREnclave string `json:"mrenclave"`
	MRSigner  string `json:"mrsigner"`
	// ISVProdID, ISVSVN and ConfigSVN are the product ID and the security versions.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	ConfigSVN uint16 `json:"configsvn"`
	// Attributes and XFRM are the attribute flags and XFRM, 16 hex digits each.
	Attributes string `json:"attributes"`
	XFRM       string `json:"xfrm"`
	// Debug is true for a debug enclave, whose memory the host can read.
	Debug bool `json:"debug"`
	// MiscSelect is 8 hex digits.
	MiscSelect string `json:"miscselect"`
	// CPUSVN is the CPU security version, hex.
	CPUSVN string `json:"cpusvn"`
	// ReportData is the 64 bytes of report data, hex.
	ReportData string `json:"report_data"`
}

// QuotePCK is the platform identity in a quote's PCK certificate.
type QuotePCK struct {
	// Issuer is the common name of the PCK certificate's issuer.
	Issuer string `json:"issuer"`
	// FMSPC, PCEID, SGXType, PCESVN, CompSVNs, CPUSVN and PPID come from the certificate's SGX
	// extension; they are empty when parse_error is set. Hex values are lowercase.
	FMSPC    string `json:"fmspc"`
	PCEID    string `json:"pceid"`
	SGXType  string `json:"sgx_type"`
	PCESVN   uint16 `json:"pce_svn"`
	CompSVNs []int  `json:"tcb_comp_svns"`
	CPUSVN   string `json:"cpusvn"`
	PPID     string `json:"ppid"`
	// Chain lists the common names of the certificate chain, leaf first.
	Chain []string `json:"chain"`
	// NotAfter is the end of the PCK certificate's validity, RFC 3339 in UTC.
	NotAfter string `json:"not_after"`
	// ParseErrors says why the SGX extension did not parse; omitted when it did.
	ParseErrors string `json:"parse_error,omitempty"`
}

// QuoteVerify is printed by `cloister quote verify`, verified or not; the exit status is 1
// when verified is false. Fields that could not be determined are null. Hex values are
// lowercase.
type QuoteVerify struct {
	// Version, AttKeyType, QESVN and PCESVN are from the quote header, as in [QuoteInspect].
	Version    *uint16 `json:"version"`
	AttKeyType *uint16 `json:"att_key_type"`
	QESVN      *uint16 `json:"qe_svn"`
	PCESVN     *uint16 `json:"pce_svn"`
	// MREnclave, MRSigner, ISVProdID, ISVSVN, Debug and ReportData are the quoted enclave's.
	MREnclave  *string `json:"mrenclave"`
	MRSigner   *string `json:"mrsigner"`
	ISVProdID  *uint16 `json:"isvprodid"`
	ISVSVN     *uint16 `json:"isvsvn"`
	Debug      *bool   `json:"debug"`
	ReportData *string `json:"report_data"`
	// FMSPC and PCEID identify the platform, from the PCK certificate.
	FMSPC *string `json:"fmspc"`
	PCEID *string `json:"pceid"`
	// TCBStatus is the platform's TCB status, such as UpToDate; null without TCB Info.
	TCBStatus *string `json:"tcb_status"`
	// AdvisoryIDs are the Intel security advisories that apply; null when tcb_status is.
	AdvisoryIDs []string `json:"advisory_ids"`
	// CRLChecked is true when the certificate revocation lists were checked.
	CRLChecked bool `json:"crl_checked"`
	// CollateralExpired is true when the collateral was past its next update at the
	// verification instant (still verified: whether to accept that is policy).
	CollateralExpired bool `json:"collateral_expired"`
	// Verified is true when every signature, chain and identity check passed.
	Verified bool `json:"verified"`
	// Error says why the quote is not verified; null when it is.
	Error *string `json:"error"`
}
