package verify

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy is a relying party's requirements on a verified quote, applied by [Policy.Check] after
// [Verifier.Verify]. The zero Policy rejects everything: it names no enclave identity.
type Policy struct {
	// MREnclave accepts an enclave whose MRENCLAVE is any of these.
	MREnclave [][32]byte
	// MRSigner, when not all zero, requires this MRSIGNER and ISVProdID. When MREnclave is set
	// too, both must match.
	MRSigner  [32]byte
	ISVProdID uint16
	// MinISVSVN is the lowest ISVSVN accepted; 0 accepts any.
	MinISVSVN uint16
	// AllowDebug accepts debug enclaves, whose memory the host can read. Default false.
	AllowDebug bool
	// TCBStatuses are the converged TCB statuses accepted; nil means DefaultTCBStatuses.
	TCBStatuses []TCBStatus
	// Advisories, when non-nil (even empty), must list every advisory ID of the result; nil
	// places no restriction.
	Advisories []string
	// ReportData is compared with the start of the report data, over its length (at most 64
	// bytes): a caller may check only the first 32 bytes.
	ReportData []byte
	// AllowExpiredCollateral accepts results whose collateral or certificates were outside their
	// validity at the verification time. Default false.
	AllowExpiredCollateral bool
	// RequireCRLs rejects results whose revocation lists were not both checked. A verifier that
	// takes collateral from the party it verifies needs it: leaving the CRLs out must not hide
	// a revoked platform. Default false (missing CRLs leave Platform.CRLChecked false).
	RequireCRLs bool
}

// PolicyField names the part of a Result a [PolicyError] is about.
type PolicyField string

// The fields a Policy checks.
const (
	FieldMREnclave  PolicyField = "mrenclave"
	FieldMRSigner   PolicyField = "mrsigner"
	FieldISVProdID  PolicyField = "isvprodid"
	FieldISVSVN     PolicyField = "isvsvn"
	FieldDebug      PolicyField = "debug"
	FieldReportData PolicyField = "report data"
	FieldTCBStatus  PolicyField = "TCB status"
	FieldAdvisories PolicyField = "advisory IDs"
	FieldCollateral PolicyField = "collateral"
)

// PolicyError is a rejection by a Policy: what was found and what the policy expected.
type PolicyError struct {
	Field    PolicyField
	Found    string
	Expected string
}

// Error returns "<field> <found> not accepted; expected <expected>".
func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s %s not accepted; expected %s", e.Field, e.Found, e.Expected)
}

// Validate reports whether p can be applied: it must name an enclave identity (MREnclave or
// MRSigner), its TCB statuses must be known and its report data at most 64 bytes. The error
// wraps [ErrInvalidPolicy].
func (p *Policy) Validate() error {
	var errs []error
	if len(p.MREnclave) == 0 && p.MRSigner == ([32]byte{}) {
		errs = append(errs, errors.New("names no enclave identity; expected MREnclave or MRSigner"))
	}
	for _, st := range p.TCBStatuses {
		if _, err := ParseTCBStatus(string(st)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(p.ReportData) > 64 {
		errs = append(errs, fmt.Errorf("report data of %d bytes; expected at most 64", len(p.ReportData)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	return nil
}

// Check applies p to a verification result. It returns nil if r is accepted, an error wrapping
// [ErrInvalidPolicy] if p cannot be applied, and otherwise every rejection, each a *PolicyError
// (joined with errors.Join; find them with errors.AsType).
func (p *Policy) Check(r *Result) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("%w: no verification result to check", ErrInvalidPolicy)
	}
	var errs []error
	reject := func(f PolicyField, found, expected string) {
		errs = append(errs, &PolicyError{Field: f, Found: found, Expected: expected})
	}
	e := &r.Enclave
	if len(p.MREnclave) > 0 && !slices.Contains(p.MREnclave, e.MREnclave) {
		reject(FieldMREnclave, hex.EncodeToString(e.MREnclave[:]), "one of "+hexList(p.MREnclave))
	}
	if p.MRSigner != ([32]byte{}) {
		if e.MRSigner != p.MRSigner {
			reject(FieldMRSigner, hex.EncodeToString(e.MRSigner[:]), hex.EncodeToString(p.MRSigner[:]))
		}
		if e.ISVProdID != p.ISVProdID {
			reject(FieldISVProdID, fmt.Sprint(e.ISVProdID), fmt.Sprint(p.ISVProdID))
		}
	}
	if e.ISVSVN < p.MinISVSVN {
		reject(FieldISVSVN, fmt.Sprint(e.ISVSVN), fmt.Sprintf("at least %d", p.MinISVSVN))
	}
	if e.Debug && !p.AllowDebug {
		reject(FieldDebug, "enclave (ATTRIBUTES.DEBUG set)", "a production enclave; the policy does not allow debug enclaves")
	}
	if n := len(p.ReportData); !bytes.Equal(e.ReportData[:n], p.ReportData) {
		reject(FieldReportData, hex.EncodeToString(e.ReportData[:n]), hex.EncodeToString(p.ReportData)+fmt.Sprintf(" (first %d bytes)", n))
	}
	statuses := p.TCBStatuses
	if statuses == nil {
		statuses = DefaultTCBStatuses
	}
	if st := r.Platform.TCBStatus; !slices.Contains(statuses, st) || st == "" {
		found := string(st)
		if st == "" {
			found = "(not evaluated)"
		}
		reject(FieldTCBStatus, found, "one of ["+joinStatuses(statuses)+"]")
	}
	if p.Advisories != nil {
		var extra []string
		for _, id := range r.Platform.AdvisoryIDs {
			if !slices.Contains(p.Advisories, id) {
				extra = append(extra, id)
			}
		}
		if len(extra) > 0 {
			reject(FieldAdvisories, "["+strings.Join(extra, ", ")+"]", "only ["+strings.Join(p.Advisories, ", ")+"]")
		}
	}
	if p.RequireCRLs && !r.Platform.CRLChecked {
		reject(FieldCollateral, "without both revocation lists (root CA CRL and PCK CRL)", "collateral with both CRLs; the policy requires revocation checks")
	}
	if r.Platform.CollateralExpired && !p.AllowExpiredCollateral {
		items := make([]string, len(r.Platform.Expired))
		for i, v := range r.Platform.Expired {
			items[i] = v.String()
		}
		reject(FieldCollateral, "outside its validity at the verification time ("+strings.Join(items, "; ")+")",
			"valid collateral; the policy does not allow expired collateral")
	}
	return errors.Join(errs...)
}

func hexList(ms [][32]byte) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = hex.EncodeToString(m[:])
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func joinStatuses(sts []TCBStatus) string {
	s := make([]string, len(sts))
	for i, st := range sts {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}
