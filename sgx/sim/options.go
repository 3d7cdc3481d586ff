package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// DefaultCollateralValidity is the time from issueDate to nextUpdate of collateral whose
// next update is not given: 90 days.
const DefaultCollateralValidity = 90 * 24 * time.Hour

// DefaultTCBEvaluationDataNumber is the tcbEvaluationDataNumber of TCB Info and QE Identity
// when [CollateralOptions.TCBEvaluationDataNumber] is zero.
const DefaultTCBEvaluationDataNumber = 17

// DefaultQESVN is the Quoting Enclave's ISVSVN when [Options.QESVN] is nil.
const DefaultQESVN uint16 = 8

// DefaultFMSPC is the FMSPC of a simulated platform when [Options.FMSPC] is zero. Its AA55
// bytes make it easy to recognise; it is not the FMSPC of any Intel platform family.
var DefaultFMSPC = [6]byte{0x00, 0xAA, 0x55, 0x00, 0x00, 0x00}

// DefaultTCB is the TCB a simulated PCK certificate is issued for when [Options.TCB] is nil:
// realistic component SVNs, PCESVN 13, and a CPUSVN equal to the component SVNs.
var DefaultTCB = sgx.PCKTCB{
	CompSVN: [16]byte{14, 14, 3, 3, 255, 255, 1},
	PCESVN:  13,
	CPUSVN:  [16]byte{14, 14, 3, 3, 255, 255, 1},
}

// Options configure [Create]. The zero value gives a processor (SGX type Standard) platform
// with [DefaultFMSPC], [DefaultTCB], [DefaultQESVN] and UpToDate collateral valid for
// [DefaultCollateralValidity].
type Options struct {
	// Now is the creation time: certificates and the default collateral start then. Zero
	// means time.Now(). It is truncated to whole seconds, UTC.
	Now time.Time
	// CollateralValidity is the time from issueDate to nextUpdate of the collateral Create
	// writes, unless Collateral.NextUpdate is set. Zero means [DefaultCollateralValidity].
	// Certificates are valid for years regardless, like Intel's: root 30, PCK CA 15, PCK
	// certificate and TCB Signing certificate 7.
	CollateralValidity time.Duration
	// CAType selects the PCK CA. sgx.PCKCAProcessor (the default) gives a single-package
	// platform of SGX type Standard; sgx.PCKCAPlatform a multi-package platform of SGX type
	// Scalable whose PCK certificate also carries a platform instance ID and configuration.
	CAType sgx.PCKCAType
	// FMSPC is the platform's family-model-stepping-platform-customSKU. Zero means
	// [DefaultFMSPC].
	FMSPC [6]byte
	// TCB holds the component SVNs, PCESVN and CPUSVN the PCK certificate is issued for. The
	// quote header carries the same PCESVN. Nil means [DefaultTCB].
	TCB *sgx.PCKTCB
	// QESVN is the Quoting Enclave's ISVSVN (QE report and quote header). Nil means
	// [DefaultQESVN].
	QESVN *uint16
	// Collateral sets the TCB status, revocations and dates of the collateral Create writes
	// into the platform directory. Its zero IssueDate means Now.
	Collateral CollateralOptions
}

// CollateralOptions choose what the collateral written by [Platform.WriteCollateral] (and by
// [Create]) says about the platform. The zero value describes an UpToDate platform with an
// UpToDate QE, nothing revoked, valid from now for [DefaultCollateralValidity].
type CollateralOptions struct {
	// TCBStatus is the status of the TCB Info level that the platform's PCK SVNs match.
	// Empty means verify.UpToDate. Any other status also puts an UpToDate level with higher
	// SVNs above the platform's level, as Intel does.
	TCBStatus verify.TCBStatus
	// AdvisoryIDs are the advisories of the platform's TCB level (such as "INTEL-SA-00615").
	// Nil means none.
	AdvisoryIDs []string
	// QETCBStatus is the status of the QE Identity level that the QE's ISVSVN matches. Empty
	// means verify.UpToDate; any other status puts an UpToDate level with ISVSVN+1 above it.
	QETCBStatus verify.TCBStatus
	// QEAdvisoryIDs are the advisories of the QE's level. Nil means none.
	QEAdvisoryIDs []string
	// RevokePCK lists the PCK certificate in the PCK CRL.
	RevokePCK bool
	// RevokePCKCA lists the PCK CA certificate in the root CA CRL.
	RevokePCKCA bool
	// IssueDate is the issueDate of TCB Info and QE Identity and the thisUpdate of both CRLs.
	// Zero means now (time.Now(), or Options.Now for Create). Truncated to whole seconds, UTC.
	IssueDate time.Time
	// NextUpdate is the nextUpdate of TCB Info, QE Identity and both CRLs; it must be after
	// IssueDate. Zero means IssueDate plus [DefaultCollateralValidity] (or
	// Options.CollateralValidity for Create). Set both dates in the past for expired
	// collateral, or both in the future for collateral that is not valid yet.
	NextUpdate time.Time
	// TCBEvaluationDataNumber is the tcbEvaluationDataNumber of TCB Info and QE Identity.
	// Zero means [DefaultTCBEvaluationDataNumber].
	TCBEvaluationDataNumber int
}

// withDefaults validates o and fills in its defaults. All problems are reported at once.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC().Truncate(time.Second)
	switch {
	case o.CollateralValidity == 0:
		o.CollateralValidity = DefaultCollateralValidity
	case o.CollateralValidity < time.Second:
		errs = append(errs, fmt.Errorf("collateral validity: expected at least 1s, found %v", o.CollateralValidity))
	}
	switch o.CAType {
	case "":
		o.CAType = sgx.PCKCAProcessor
	case sgx.PCKCAProcessor, sgx.PCKCAPlatform:
	default:
		errs = append(errs, fmt.Errorf("PCK CA type: expected %q or %q, found %q", sgx.PCKCAProcessor, sgx.PCKCAPlatform, o.CAType))
	}
	if o.FMSPC == [6]byte{} {
		o.FMSPC = DefaultFMSPC
	}
	if o.TCB == nil {
		o.TCB = new(DefaultTCB)
	}
	if o.QESVN == nil {
		o.QESVN = new(DefaultQESVN)
	}
	c, err := o.Collateral.withDefaults(o.Now, o.CollateralValidity)
	if err != nil {
		errs = append(errs, err)
	}
	o.Collateral = c
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("simulated platform options: %w", err)
	}
	return o, nil
}

// withDefaults validates c and fills in its defaults, taking now and validity for the dates.
func (c CollateralOptions) withDefaults(now time.Time, validity time.Duration) (CollateralOptions, error) {
	var errs []error
	for _, st := range []*verify.TCBStatus{&c.TCBStatus, &c.QETCBStatus} {
		if *st == "" {
			*st = verify.UpToDate
		} else if _, err := verify.ParseTCBStatus(string(*st)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ids := range [][]string{c.AdvisoryIDs, c.QEAdvisoryIDs} {
		for i, id := range ids {
			if id == "" {
				errs = append(errs, fmt.Errorf("advisory ID %d: expected a name such as INTEL-SA-00615, found an empty string", i))
			}
		}
	}
	if c.IssueDate.IsZero() {
		c.IssueDate = now
	}
	c.IssueDate = c.IssueDate.UTC().Truncate(time.Second)
	if c.NextUpdate.IsZero() {
		c.NextUpdate = c.IssueDate.Add(validity)
	}
	c.NextUpdate = c.NextUpdate.UTC().Truncate(time.Second)
	if !c.NextUpdate.After(c.IssueDate) {
		errs = append(errs, fmt.Errorf("collateral nextUpdate %s: expected a time after issueDate %s",
			c.NextUpdate.Format(time.RFC3339), c.IssueDate.Format(time.RFC3339)))
	}
	switch {
	case c.TCBEvaluationDataNumber == 0:
		c.TCBEvaluationDataNumber = DefaultTCBEvaluationDataNumber
	case c.TCBEvaluationDataNumber < 0:
		errs = append(errs, fmt.Errorf("tcbEvaluationDataNumber: expected a positive number, found %d", c.TCBEvaluationDataNumber))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("collateral options: %w", err)
	}
	return c, nil
}
