package verify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func TestPolicyCheck(t *testing.T) {
	mrenclave := [32]byte{0x3f, 1}
	mrsigner := [32]byte{0x5e, 2}
	base := func() *verify.Result {
		return &verify.Result{
			Enclave: verify.Enclave{
				MREnclave: mrenclave, MRSigner: mrsigner, ISVProdID: 3, ISVSVN: 5,
				Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit},
				ReportData: [64]byte{0: 0xaa, 31: 0xbb, 32: 0xcc},
			},
			Platform: verify.Platform{TCBStatus: verify.UpToDate, AdvisoryIDs: []string{"INTEL-SA-00615"}},
		}
	}
	other := [32]byte{0xaa}
	for _, tc := range []struct {
		name      string
		policy    verify.Policy
		result    func(r *verify.Result)
		field     verify.PolicyField // "" for accepted
		message   string             // substring of the rejection
		invalid   bool               // Check returns ErrInvalidPolicy
		rejectAll []verify.PolicyField
	}{
		{name: "mrenclave accepted", policy: verify.Policy{MREnclave: [][32]byte{other, mrenclave}}},
		{name: "mrenclave rejected", policy: verify.Policy{MREnclave: [][32]byte{other}}, field: verify.FieldMREnclave,
			message: "mrenclave 3f01" + strings.Repeat("00", 30) + " not accepted; expected one of [aa" + strings.Repeat("00", 31) + "]"},
		{name: "mrsigner and product accepted", policy: verify.Policy{MRSigner: mrsigner, ISVProdID: 3, MinISVSVN: 5}},
		{name: "mrsigner rejected", policy: verify.Policy{MRSigner: other, ISVProdID: 3}, field: verify.FieldMRSigner, message: "mrsigner 5e02"},
		{name: "isvprodid rejected", policy: verify.Policy{MRSigner: mrsigner, ISVProdID: 4}, field: verify.FieldISVProdID, message: "isvprodid 3 not accepted; expected 4"},
		{name: "isvsvn too low", policy: verify.Policy{MRSigner: mrsigner, ISVProdID: 3, MinISVSVN: 6}, field: verify.FieldISVSVN, message: "isvsvn 5 not accepted; expected at least 6"},
		{name: "both identities must match", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, MRSigner: other, ISVProdID: 3}, field: verify.FieldMRSigner},
		{name: "no identity", policy: verify.Policy{}, invalid: true, message: "names no enclave identity"},
		{name: "debug rejected", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}},
			result: func(r *verify.Result) { r.Enclave.Debug = true }, field: verify.FieldDebug, message: "ATTRIBUTES.DEBUG set"},
		{name: "debug allowed", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, AllowDebug: true},
			result: func(r *verify.Result) { r.Enclave.Debug = true }},
		{name: "TCB status not accepted", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}},
			result: func(r *verify.Result) { r.Platform.TCBStatus = verify.OutOfDate }, field: verify.FieldTCBStatus,
			message: "TCB status OutOfDate not accepted; expected one of [UpToDate, SWHardeningNeeded]"},
		{name: "TCB status accepted by a custom list", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, TCBStatuses: []verify.TCBStatus{verify.OutOfDate}},
			result: func(r *verify.Result) { r.Platform.TCBStatus = verify.OutOfDate }},
		{name: "empty status list accepts nothing", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, TCBStatuses: []verify.TCBStatus{}},
			field: verify.FieldTCBStatus},
		{name: "TCB status not evaluated", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}},
			result: func(r *verify.Result) { r.Platform.TCBStatus = "" }, field: verify.FieldTCBStatus, message: "(not evaluated)"},
		{name: "unknown status in policy", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, TCBStatuses: []verify.TCBStatus{"Fine"}},
			invalid: true, message: `unknown TCB status "Fine"`},
		{name: "advisories unrestricted", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, Advisories: nil}},
		{name: "advisory listed", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, Advisories: []string{"INTEL-SA-00615"}}},
		{name: "advisory not listed", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, Advisories: []string{"INTEL-SA-00657"}},
			field: verify.FieldAdvisories, message: "advisory IDs [INTEL-SA-00615] not accepted; expected only [INTEL-SA-00657]"},
		{name: "empty advisory list rejects any", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, Advisories: []string{}},
			field: verify.FieldAdvisories},
		{name: "empty advisory list accepts none", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, Advisories: []string{}},
			result: func(r *verify.Result) { r.Platform.AdvisoryIDs = nil }},
		{name: "report data prefix", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, ReportData: append(make([]byte, 31, 32), 0xbb)},
			result: func(r *verify.Result) { r.Enclave.ReportData[0] = 0 }},
		{name: "report data 64 bytes", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, ReportData: base().Enclave.ReportData[:]}},
		{name: "report data differs", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, ReportData: []byte{0xab}},
			field: verify.FieldReportData, message: "report data aa not accepted; expected ab (first 1 bytes)"},
		{name: "report data too long", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, ReportData: make([]byte, 65)}, invalid: true, message: "at most 64"},
		{name: "expired collateral rejected", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}},
			result: func(r *verify.Result) {
				r.Platform.CollateralExpired = true
				r.Platform.Expired = []verify.Validity{{Item: "tcb_info", NotBefore: time.Unix(0, 0).UTC(), NotAfter: time.Unix(60, 0).UTC()}}
			}, field: verify.FieldCollateral, message: "tcb_info valid 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z"},
		{name: "expired collateral allowed", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, AllowExpiredCollateral: true},
			result: func(r *verify.Result) { r.Platform.CollateralExpired = true }},
		{name: "CRLs required and missing", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, RequireCRLs: true},
			result: func(r *verify.Result) { r.Platform.CRLChecked = false },
			field:  verify.FieldCollateral, message: "without both revocation lists"},
		{name: "CRLs required and checked", policy: verify.Policy{MREnclave: [][32]byte{mrenclave}, RequireCRLs: true},
			result: func(r *verify.Result) { r.Platform.CRLChecked = true }},
		{name: "several rejections", policy: verify.Policy{MREnclave: [][32]byte{other}},
			result: func(r *verify.Result) {
				r.Enclave.Debug = true
				r.Platform.TCBStatus = verify.Revoked
			}, field: verify.FieldMREnclave, rejectAll: []verify.PolicyField{verify.FieldMREnclave, verify.FieldDebug, verify.FieldTCBStatus}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			if tc.result != nil {
				tc.result(r)
			}
			err := tc.policy.Check(r)
			switch {
			case tc.invalid:
				if !errors.Is(err, verify.ErrInvalidPolicy) || tc.policy.Validate() == nil {
					t.Fatalf("Check = %v, want ErrInvalidPolicy (and Validate to fail)", err)
				}
			case tc.field == "":
				if err != nil {
					t.Fatalf("Check = %v, want accepted", err)
				}
				return
			default:
				pe, ok := errors.AsType[*verify.PolicyError](err)
				if !ok || pe.Field != tc.field {
					t.Fatalf("Check = %v, want a %q rejection first", err, tc.field)
				}
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Check = %q, want it to contain %q", err, tc.message)
			}
			for _, f := range tc.rejectAll {
				if !hasPolicyField(err, f) {
					t.Errorf("Check = %v, want a %q rejection among them", err, f)
				}
			}
		})
	}
	if err := (&verify.Policy{MREnclave: [][32]byte{mrenclave}}).Check(nil); !errors.Is(err, verify.ErrInvalidPolicy) {
		t.Errorf("Check(nil) = %v, want ErrInvalidPolicy", err)
	}
}

// TestPolicyRejectsDebugVector applies the default policy to the debug enclave of the
// mobilecoin vector: its debug bit is rejected.
func TestPolicyRejectsDebugVector(t *testing.T) {
	v := vectorNamed(t, "mobilecoin-debug-enclave")
	res, err := verify.New(verify.IntelRoot()).Verify(v.File(t, "quote"), loadCollateral(t, v), v.VerificationTime)
	if !errors.Is(err, verify.ErrCollateralMissing) {
		t.Fatalf("Verify = %v, want ErrCollateralMissing", err)
	}
	pol := verify.Policy{MREnclave: [][32]byte{res.Enclave.MREnclave}}
	if err := pol.Check(res); !hasPolicyField(err, verify.FieldDebug) {
		t.Errorf("default policy: %v, want a debug rejection", err)
	}
	pol.AllowDebug = true
	if err := pol.Check(res); hasPolicyField(err, verify.FieldDebug) {
		t.Errorf("policy allowing debug: %v, want no debug rejection", err)
	}
}
