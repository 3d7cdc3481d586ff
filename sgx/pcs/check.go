package pcs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// check verifies col for k at now: every item present chains to the pinned root and its
// signature verifies, no CRL revokes a signing certificate, TCB Info and QE Identity are
// present, the TCB Info is for k's FMSPC and the PCK CRL (when present, with its issuer chain)
// for k's CA type. Collateral that passes every check but is outside its validity is returned
// with a nil error and the expiry as expired.
func (p *Provider) check(col *verify.Collateral, k cacheKey, now time.Time) (expired, err error) {
	if col.TCBInfo == nil || col.QEIdentity == nil {
		return nil, errors.New("expected TCB Info and QE Identity, found only part of them")
	}
	if col.PCKCRL != nil && len(col.PCKCRLIssuerChain) == 0 {
		return nil, errors.New("PCK CRL without its issuer chain; expected both")
	}
	if err := p.verifier.CheckCollateral(col, now); errors.Is(err, verify.ErrCollateralExpired) {
		expired = err
	} else if err != nil {
		return nil, err
	}
	if col.TCBInfo.FMSPC != k.fmspc {
		return nil, fmt.Errorf("TCB Info is for FMSPC %X; expected %X", col.TCBInfo.FMSPC, k.fmspc)
	}
	if col.PCKCRL != nil {
		issuer := col.PCKCRLIssuerChain[0].Subject.CommonName
		if ca, err := sgx.PCKCATypeOf(issuer); err != nil || ca != k.ca {
			return nil, fmt.Errorf("PCK CRL is issued by %q; expected the PCK %s CA", issuer, k.ca)
		}
	}
	return expired, nil
}

// notOlder returns an error naming each item of fresh that is older than the same item of
// cached: a lower tcbEvaluationDataNumber, an earlier issueDate, an earlier CRL thisUpdate.
// Both sets must have TCB Info and QE Identity.
func notOlder(fresh, cached *verify.Collateral) error {
	var errs []error
	older := func(what string, f, c time.Time) {
		if f.Before(c) {
			errs = append(errs, fmt.Errorf("%s %s is earlier than the cached %s", what, f.Format(time.RFC3339), c.Format(time.RFC3339)))
		}
	}
	lower := func(what string, f, c int) {
		if f < c {
			errs = append(errs, fmt.Errorf("%s tcbEvaluationDataNumber %d is lower than the cached %d", what, f, c))
		}
	}
	lower("TCB Info", fresh.TCBInfo.TCBEvaluationDataNumber, cached.TCBInfo.TCBEvaluationDataNumber)
	lower("QE Identity", fresh.QEIdentity.TCBEvaluationDataNumber, cached.QEIdentity.TCBEvaluationDataNumber)
	older("TCB Info issueDate", fresh.TCBInfo.IssueDate, cached.TCBInfo.IssueDate)
	older("QE Identity issueDate", fresh.QEIdentity.IssueDate, cached.QEIdentity.IssueDate)
	if fresh.RootCACRL != nil && cached.RootCACRL != nil {
		older("root CA CRL thisUpdate", fresh.RootCACRL.ThisUpdate, cached.RootCACRL.ThisUpdate)
	}
	if fresh.PCKCRL != nil && cached.PCKCRL != nil {
		older("PCK CRL thisUpdate", fresh.PCKCRL.ThisUpdate, cached.PCKCRL.ThisUpdate)
	}
	return errors.Join(errs...)
}

// carryOver returns fetched, completed with the CRLs it lacks from cached (nil-safe), so that
// a service that stops serving a CRL does not turn revocation checking off.
func carryOver(fetched, cached *verify.Collateral) *verify.Collateral {
	if cached == nil {
		return fetched
	}
	col := *fetched
	if col.RootCACRL == nil {
		col.RootCACRL = cached.RootCACRL
	}
	if col.PCKCRL == nil {
		col.PCKCRL, col.PCKCRLIssuerChain = cached.PCKCRL, cached.PCKCRLIssuerChain
	}
	return &col
}

// earliestNextUpdate returns the earliest nextUpdate of TCB Info, QE Identity and the CRLs
// in col (the zero time if none).
func earliestNextUpdate(col *verify.Collateral) time.Time {
	var times []time.Time
	if col.TCBInfo != nil {
		times = append(times, col.TCBInfo.NextUpdate)
	}
	if col.QEIdentity != nil {
		times = append(times, col.QEIdentity.NextUpdate)
	}
	for _, crl := range []*x509.RevocationList{col.RootCACRL, col.PCKCRL} {
		if crl != nil && !crl.NextUpdate.IsZero() {
			times = append(times, crl.NextUpdate)
		}
	}
	if len(times) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(times, time.Time.Compare)
}

// cloneCollateral returns a copy of col whose fields and chain slices the caller may change
// without changing the cache. The items themselves are shared; the verifier uses only their
// raw bytes.
func cloneCollateral(col *verify.Collateral) *verify.Collateral {
	c := *col
	c.TCBInfoIssuerChain = slices.Clone(col.TCBInfoIssuerChain)
	c.QEIdentityIssuerChain = slices.Clone(col.QEIdentityIssuerChain)
	c.PCKCRLIssuerChain = slices.Clone(col.PCKCRLIssuerChain)
	return &c
}
