package verify

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// Verify parses an SGX ECDSA quote version 3 and verifies it with col at the instant at, in the
// order of Intel's Quote Verification Library (see the package documentation).
//
// The Result is non-nil whenever the quote parsed, even with an error; the error is a
// *[CheckError] naming the first failed check and may wrap [ErrUntrustedRoot], [ErrRevoked],
// [ErrInvalidSignature], [ErrTCBLevelNotSupported] or [ErrCollateralMissing]. Items outside their
// validity at at are not an error: they are listed in Result.Platform. A nil col is treated as
// empty collateral. Verify does not apply a relying party's policy: see [Policy].
func (v *Verifier) Verify(quote []byte, col *Collateral, at time.Time) (*Result, error) {
	q, err := v.parseQuote(quote)
	if err != nil {
		return nil, fail(CheckQuoteFormat, err)
	}
	return v.verify(q, col, at)
}

// CollateralFor finds the collateral of a platform, given the FMSPC and PCK CA type of its PCK
// certificate.
type CollateralFor func(fmspc [6]byte, ca sgx.PCKCAType) (*Collateral, error)

// VerifyFor is Verify for a caller that keeps collateral for many platforms: after the PCK
// chain verified, get returns the collateral of the quote's platform. It also returns that
// collateral. A failure of get is a CheckCollateral error wrapping it.
func (v *Verifier) VerifyFor(quote []byte, get CollateralFor, at time.Time) (*Result, *Collateral, error) {
	q, err := v.parseQuote(quote)
	if err != nil {
		return nil, nil, fail(CheckQuoteFormat, err)
	}
	pck, err := v.pck(q)
	if err != nil {
		return newResult(q), nil, err
	}
	col, err := get(pck.ext.FMSPC, pck.caType)
	if err != nil {
		r := newResult(q)
		r.Platform.FMSPC, r.Platform.PCEID, r.Platform.CAType, r.Platform.PCK = pck.ext.FMSPC, pck.ext.PCEID, pck.caType, clonePCK(pck.ext)
		return r, nil, fail(CheckCollateral, fmt.Errorf("collateral for FMSPC %X (%s CA): %w", pck.ext.FMSPC, pck.caType, err))
	}
	r, err := v.verify(q, col, at)
	return r, col, err
}

// VerifyQuote is Verify for a quote that is already parsed. It verifies the quote that q's
// fields describe (it encodes them again, with CertData rather than PCKChain), so a modified q
// is verified as modified.
func (v *Verifier) VerifyQuote(q *sgx.Quote, col *Collateral, at time.Time) (*Result, error) {
	if q == nil {
		return nil, fail(CheckQuoteFormat, errors.New("nil quote"))
	}
	raw, err := q.MarshalBinary()
	if err != nil {
		return nil, fail(CheckQuoteFormat, err)
	}
	return v.Verify(raw, col, at)
}

// CheckCollateral verifies collateral on its own, as a collateral cache does before storing it:
// the CRL signatures by the pinned root and the PCK CA of the PCK CRL issuer chain, the chains
// of TCB Info and QE Identity to the pinned root key, their signatures over their exact bytes,
// and that no CRL present revokes a chain's certificate. Absent items are not checked; TCB Info
// or QE Identity present without a chain that signs it is [ErrCollateralMissing]. When every
// check passes but an item is outside its validity at at, the error wraps
// [ErrCollateralExpired] and lists the items.
func (v *Verifier) CheckCollateral(col *Collateral, at time.Time) error {
	s := v.collateral(col)
	if err := s.err(); err != nil {
		return err
	}
	if chains := s.missingChains(); len(chains) > 0 {
		return fail(CheckCollateral, fmt.Errorf("%w: %v absent; expected the chains that sign TCB Info and QE Identity", ErrCollateralMissing, chains))
	}
	var p Platform
	p.setValidity(at, s.validity)
	if p.CollateralExpired {
		return fail(CheckCollateral, fmt.Errorf("%w at %s: %v", ErrCollateralExpired, at.UTC().Format(time.RFC3339), p.Expired))
	}
	return nil
}

// verify runs the checks on a freshly parsed quote.
func (v *Verifier) verify(q *sgx.Quote, col *Collateral, at time.Time) (*Result, error) {
	r := newResult(q)
	p := &r.Platform

	// PCK certificate chain to the pinned root key; the PCK certificate's SGX extension.
	pck, err := v.pck(q)
	if err != nil {
		return r, err
	}
	p.FMSPC, p.PCEID, p.CAType, p.PCK = pck.ext.FMSPC, pck.ext.PCEID, pck.caType, clonePCK(pck.ext)

	cs := v.collateral(col)
	p.setValidity(at, pck.validity, cs.validity)
	p.CRLChecked = cs.rootCRL != nil && cs.pckCRL != nil
	p.TCBEvaluationDataNumber = cs.evalNumber

	// CRLs: their signatures, then the revocation of the PCK certificate and its CA.
	if cs.crlErr != nil {
		return r, cs.crlErr
	}
	if err := v.checkPCKRevocation(pck, cs); err != nil {
		return r, err
	}

	// TCB Info and QE Identity: chains and signatures over their exact bytes.
	if cs.identityErr != nil {
		return r, cs.identityErr
	}
	ti, qi := cs.tcbInfo, cs.qeIdentity
	if ti != nil && (ti.FMSPC != pck.ext.FMSPC || ti.PCEID != pck.ext.PCEID) {
		return r, fail(CheckTCBInfoMatch, fmt.Errorf("TCB Info is for FMSPC %X, PCE-ID %X; the PCK certificate has FMSPC %X, PCE-ID %X",
			ti.FMSPC, ti.PCEID, pck.ext.FMSPC, pck.ext.PCEID))
	}

	// The Quoting Enclave: vendor, report signature, report data, identity.
	if q.Header.QEVendorID != sgx.IntelQEVendorID {
		return r, fail(CheckQEVendorID, fmt.Errorf("QE vendor ID %x; expected Intel's %x", q.Header.QEVendorID, sgx.IntelQEVendorID))
	}
	qeReport := q.RawQEReport()
	if err := v.checkQEReportSignature(pck, qeReport, &q.QEReportSignature); err != nil {
		return r, err
	}
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	var want [64]byte
	h.Sum(want[:0]) // want = SHA-256(…) ‖ 32 zero bytes
	if got := q.QEReport.ReportData; got != want {
		return r, fail(CheckQEReportData, fmt.Errorf("QE report data %x; expected SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes = %x", got, want))
	}
	if qi != nil {
		if err := qi.checkReport(&q.QEReport, qeReport); err != nil {
			return r, fail(CheckQEIdentity, err)
		}
	}

	// The quote: the attestation key signs header ‖ body.
	ak, err := q.AttestationPublicKey()
	if err != nil {
		return r, fail(CheckQuoteSignature, err)
	}
	if !verifyRS(ak, q.SignedBytes(), &q.Signature) {
		return r, fail(CheckQuoteSignature, fmt.Errorf("%w: quote signature %x… does not verify with the attestation key %x…", ErrInvalidSignature, q.Signature[:8], q.AttestationKey[:8]))
	}

	// TCB levels: the platform's from the PCK certificate, the QE's from its ISVSVN, converged.
	if err := evaluateTCB(p, ti, qi, pck.ext, &q.QEReport); err != nil {
		return r, err
	}
	return r, cs.missingErr()
}

// checkPCKRevocation checks the PCK CRL against the quote's PCK chain (same issuer, signed by
// the PCK CA) and that neither the PCK certificate nor its CA is revoked.
func (v *Verifier) checkPCKRevocation(pck *pckState, cs *colState) error {
	if crl := cs.pckCRL; crl != nil {
		if !bytes.Equal(crl.RawIssuer, pck.leaf.RawIssuer) {
			return fail(CheckPCKCRL, fmt.Errorf("PCK CRL is issued by %q; expected the PCK certificate's issuer %q", crl.Issuer.CommonName, pck.leaf.Issuer.CommonName))
		}
		if cs.pckCRLIssuer == nil || !bytes.Equal(cs.pckCRLIssuer.Raw, pck.ca.Raw) {
			if err := v.checkCRLSignature(crl, pck.ca); err != nil {
				return fail(CheckPCKCRL, err)
			}
		}
		if err := cs.notRevoked(cs.revokedByPCKCRL, pck.leaf, "PCK CRL"); err != nil {
			return err
		}
	}
	if cs.rootCRL != nil {
		return cs.notRevoked(cs.revokedByRoot, pck.ca, "root CA CRL")
	}
	return nil
}

// checkQEReportSignature checks the PCK key's signature over the QE report, remembering success.
func (v *Verifier) checkQEReportSignature(pck *pckState, report []byte, sig *[sgx.SignatureSize]byte) error {
	key := newDigester("qe-report").add(report).add(sig[:]).add(pck.leafHash[:]).sum()
	if _, ok := v.sigs.get(key); ok {
		return nil
	}
	if !verifyRS(pck.leafKey, report, sig) {
		return fail(CheckQEReportSignature, fmt.Errorf("%w: QE report signature %x… does not verify with the key of %q (serial %x)",
			ErrInvalidSignature, sig[:8], pck.leaf.Subject.CommonName, pck.leaf.SerialNumber))
	}
	v.sigs.put(key, struct{}{})
	return nil
}

// evaluateTCB finds the platform and QE TCB levels and converges their statuses.
func evaluateTCB(p *Platform, ti *TCBInfo, qi *QEIdentity, ext *sgx.PCKExtensions, qe *sgx.ReportBody) error {
	if ti != nil {
		i := ti.matchLevel(&ext.TCB)
		if i < 0 {
			return fail(CheckTCBLevel, fmt.Errorf("%w: no level of TCB Info for FMSPC %X is at or below the PCK certificate's component SVNs %v and PCESVN %d",
				ErrTCBLevelNotSupported, ti.FMSPC, ext.TCB.CompSVN, ext.TCB.PCESVN))
		}
		l := &ti.Levels[i]
		p.PlatformTCBStatus, p.TCBDate, p.TCBLevelIndex = l.Status, l.TCBDate, i
		p.addAdvisories(l.AdvisoryIDs)
	}
	if qi != nil {
		j := qi.matchLevel(qe.ISVSVN)
		if j < 0 {
			return fail(CheckTCBLevel, fmt.Errorf("%w: QE ISVSVN %d is below every level of QE Identity", ErrTCBLevelNotSupported, qe.ISVSVN))
		}
		p.QETCBStatus = qi.Levels[j].Status
		p.addAdvisories(qi.Levels[j].AdvisoryIDs)
	}
	if ti != nil && qi != nil {
		p.TCBStatus = converge(p.PlatformTCBStatus, p.QETCBStatus)
	}
	return nil
}

// converge merges the platform TCB status with the QE's as Intel's QVL does
// (convergeTcbStatusWithQeTcbStatus): a revoked QE revokes the platform; an out-of-date QE
// (any status other than UpToDate and Revoked) makes an UpToDate or SWHardeningNeeded platform
// OutOfDate and a ConfigurationNeeded or ConfigurationAndSWHardeningNeeded platform
// OutOfDateConfigurationNeeded; otherwise the platform status stands.
func converge(platform, qe TCBStatus) TCBStatus {
	switch qe {
	case UpToDate:
		return platform
	case Revoked:
		return Revoked
	}
	switch platform {
	case UpToDate, SWHardeningNeeded:
		return OutOfDate
	case ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
		return OutOfDateConfigurationNeeded
	}
	return platform
}
