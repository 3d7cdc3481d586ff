package verify

import (
	"fmt"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// Result is what verification established about a quote. Verify returns a non-nil Result
// whenever the quote parsed, with every field it could fill before the first failed check;
// only a Result returned with a nil error has been verified.
type Result struct {
	Header   sgx.Header // the parsed quote header
	Enclave  Enclave    // the enclave that produced the quote
	Platform Platform   // the platform, its TCB status and the collateral's validity
}

// Enclave is the identity of the enclave that produced the quote, from its report body.
type Enclave struct {
	MREnclave    [32]byte       // measurement of the enclave's code and data
	MRSigner     [32]byte       // SHA-256 of the enclave signer's RSA modulus
	ISVProdID    uint16         // product ID chosen by the signer
	ISVSVN       uint16         // security version chosen by the signer
	Attributes   sgx.Attributes // ATTRIBUTES flags and XFRM
	Debug        bool           // ATTRIBUTES.DEBUG: the host can read the enclave's memory
	MiscSelect   uint32         // MISCSELECT
	ReportData   [64]byte       // data the enclave bound to the quote
	CPUSVN       [16]byte       // CPU security version in the report (not used for TCB levels)
	ConfigSVN    uint16         // CONFIGSVN
	ConfigID     [64]byte       // CONFIGID
	ISVFamilyID  [16]byte       // ISVFAMILYID (key separation and sharing)
	ISVExtProdID [16]byte       // ISVEXTPRODID (key separation and sharing)
}

// Platform is what the PCK certificate and the collateral say about the platform.
type Platform struct {
	FMSPC  [6]byte       // family-model-stepping-platform-custom SKU, from the PCK certificate
	PCEID  [2]byte       // PCE ID, from the PCK certificate
	CAType sgx.PCKCAType // which PCK CA issued the PCK certificate
	// PCK is the SGX extension of the PCK certificate (nil if the chain did not verify).
	PCK *sgx.PCKExtensions

	// TCBStatus is the platform TCB status converged with the QE TCB status as Intel's QVL
	// does; empty when it could not be evaluated.
	TCBStatus TCBStatus
	// PlatformTCBStatus is the status of the TCB Info level matching the PCK certificate's
	// component SVNs and PCESVN; QETCBStatus the status of the QE Identity level matching the
	// QE's ISVSVN.
	PlatformTCBStatus TCBStatus
	QETCBStatus       TCBStatus
	// AdvisoryIDs is the union of the matched platform and QE levels' advisories, platform
	// first, in document order.
	AdvisoryIDs []string
	// TCBDate is the tcbDate of the matched platform level; TCBLevelIndex its index in
	// TCBInfo.Levels (-1 when none matched or TCB Info was not evaluated).
	TCBDate       time.Time
	TCBLevelIndex int
	// TCBEvaluationDataNumber is the lower of TCB Info's and QE Identity's (the one present if
	// only one is).
	TCBEvaluationDataNumber int

	// CollateralExpiry is the earliest nextUpdate or NotAfter of the collateral and the
	// certificates used. CollateralExpired reports that at least one item (listed in Expired)
	// was outside its validity at the verification time: expired or not yet valid. Neither is
	// a verification error; [Policy] rejects expired collateral unless it allows it.
	CollateralExpiry  time.Time
	CollateralExpired bool
	Expired           []Validity

	// CRLChecked reports that both the root CA CRL and the PCK CRL were present and checked.
	CRLChecked bool
}

// Validity names a certificate, CRL or collateral document and the window in which it is valid.
type Validity struct {
	// Item is the role: tcb_info, qe_identity, root_ca_crl, pck_crl, pck_certificate,
	// pck_ca_certificate, root_ca_certificate, tcb_signing_certificate,
	// qe_identity_signing_certificate or pck_crl_issuer_certificate.
	Item      string
	Subject   string    // certificate or CRL issuer common name; empty for JSON documents
	NotBefore time.Time // issueDate, thisUpdate or NotBefore
	NotAfter  time.Time // nextUpdate or NotAfter
}

// String returns the item, its subject and its window.
func (v Validity) String() string {
	s := v.Item
	if v.Subject != "" {
		s += fmt.Sprintf(" (%s)", v.Subject)
	}
	return s + fmt.Sprintf(" valid %s to %s", v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339))
}

func (v Validity) contains(at time.Time) bool {
	return !at.Before(v.NotBefore) && !at.After(v.NotAfter)
}

func newResult(q *sgx.Quote) *Result {
	b := &q.Body
	return &Result{
		Header: q.Header,
		Enclave: Enclave{
			MREnclave:    b.MREnclave,
			MRSigner:     b.MRSigner,
			ISVProdID:    b.ISVProdID,
			ISVSVN:       b.ISVSVN,
			Attributes:   b.Attributes,
			Debug:        b.Debug(),
			MiscSelect:   b.MiscSelect,
			ReportData:   b.ReportData,
			CPUSVN:       b.CPUSVN,
			ConfigSVN:    b.ConfigSVN,
			ConfigID:     b.ConfigID,
			ISVFamilyID:  b.ISVFamilyID,
			ISVExtProdID: b.ISVExtProdID,
		},
		Platform: Platform{TCBLevelIndex: -1},
	}
}

// setValidity records which items are outside their validity at at, and the earliest expiry.
func (p *Platform) setValidity(at time.Time, lists ...[]Validity) {
	for _, l := range lists {
		for _, v := range l {
			if p.CollateralExpiry.IsZero() || v.NotAfter.Before(p.CollateralExpiry) {
				p.CollateralExpiry = v.NotAfter
			}
			if !v.contains(at) && !slices.Contains(p.Expired, v) {
				p.Expired = append(p.Expired, v)
			}
		}
	}
	p.CollateralExpired = len(p.Expired) > 0
}

// clonePCK returns a deep copy of e, so that callers cannot change cached state.
func clonePCK(e *sgx.PCKExtensions) *sgx.PCKExtensions {
	c := *e
	c.PlatformInstanceID = slices.Clone(e.PlatformInstanceID)
	if e.Configuration != nil {
		c.Configuration = &sgx.PlatformConfiguration{
			DynamicPlatform: cloneBool(e.Configuration.DynamicPlatform),
			CachedKeys:      cloneBool(e.Configuration.CachedKeys),
			SMTEnabled:      cloneBool(e.Configuration.SMTEnabled),
		}
	}
	return &c
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	return new(*b)
}

// addAdvisories appends the IDs not yet in p.AdvisoryIDs.
func (p *Platform) addAdvisories(ids []string) {
	for _, id := range ids {
		if !slices.Contains(p.AdvisoryIDs, id) {
			p.AdvisoryIDs = append(p.AdvisoryIDs, id)
		}
	}
}
