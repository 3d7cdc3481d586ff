package sim

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// These tests run simulated quotes through package verify, the code real quotes go through.

// verifyAt is when the end-to-end tests verify: inside the default collateral window.
var verifyAt = testNow.Add(time.Hour)

func loadCollateral(t *testing.T, dir string) *verify.Collateral {
	t.Helper()
	col, err := verify.LoadCollateral(dir)
	if err != nil {
		t.Fatalf("LoadCollateral(%s): %v", dir, err)
	}
	return col
}

func checkOf(err error) verify.Check {
	if ce, ok := errors.AsType[*verify.CheckError](err); ok {
		return ce.Check
	}
	return ""
}

func TestVerifySimulatedQuote(t *testing.T) {
	for _, caType := range []sgx.PCKCAType{sgx.PCKCAProcessor, sgx.PCKCAPlatform} {
		t.Run(string(caType), func(t *testing.T) {
			p := create(t, Options{CAType: caType})
			body := testBody()
			quote, err := p.Quote(body)
			if err != nil {
				t.Fatal(err)
			}
			col := loadCollateral(t, p.CollateralDir())

			r, err := verify.New(p.Root()).Verify(quote, col, verifyAt)
			if err != nil {
				t.Fatalf("Verify with the simulated root pinned: %v", err)
			}
			pl := r.Platform
			if pl.TCBStatus != verify.UpToDate || !pl.CRLChecked || pl.CollateralExpired || len(pl.AdvisoryIDs) != 0 {
				t.Errorf("platform = status %s, CRL checked %v, expired %v %v, advisories %v; want UpToDate, checked, not expired, none",
					pl.TCBStatus, pl.CRLChecked, pl.CollateralExpired, pl.Expired, pl.AdvisoryIDs)
			}
			if pl.FMSPC != DefaultFMSPC || pl.CAType != caType || pl.TCBLevelIndex != 0 {
				t.Errorf("platform FMSPC %x, CA type %s, level %d; want %x, %s, 0", pl.FMSPC, pl.CAType, pl.TCBLevelIndex, DefaultFMSPC, caType)
			}
			if e := r.Enclave; e.MREnclave != body.MREnclave || e.MRSigner != body.MRSigner || e.ReportData != body.ReportData || e.Debug {
				t.Errorf("enclave = %+v, want the identity of the quoted body", e)
			}

			r, err = verify.New(verify.IntelRoot()).Verify(quote, col, verifyAt)
			if err == nil || checkOf(err) != verify.CheckPCKChain || !errors.Is(err, verify.ErrUntrustedRoot) {
				t.Errorf("Verify with Intel's root = %v; want a %s failure wrapping ErrUntrustedRoot", err, verify.CheckPCKChain)
			}
			if r == nil || r.Platform.TCBStatus != "" {
				t.Errorf("Verify with Intel's root returned result %+v; want one without a TCB status", r)
			}
		})
	}
}

// TestVerifyRealQuoteAgainstSimulatedRoot: pinning a simulated root must not let real quotes
// through (nor the other way round, see TestVerifySimulatedQuote).
func TestVerifyRealQuoteAgainstSimulatedRoot(t *testing.T) {
	p := create(t, Options{})
	sim := verify.New(p.Root())
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			col := loadCollateral(t, v.Dir)
			quote := v.File(t, "quote")
			_, err := sim.Verify(quote, col, v.VerificationTime)
			if checkOf(err) != verify.CheckPCKChain || !errors.Is(err, verify.ErrUntrustedRoot) {
				t.Errorf("real quote with the simulated root = %v; want a %s failure wrapping ErrUntrustedRoot", err, verify.CheckPCKChain)
			}
			if v.Expected.TCBStatus == nil {
				return
			}
			// The same quote passes with Intel's root: the failure above is the root's doing.
			r, err := verify.New(verify.IntelRoot()).Verify(quote, col, v.VerificationTime)
			if err != nil || string(r.Platform.TCBStatus) != *v.Expected.TCBStatus {
				t.Errorf("real quote with Intel's root = %v; want status %s and no error", err, *v.Expected.TCBStatus)
			}
		})
	}
}

// TestVerifyAwkwardCases writes each awkward collateral variant for one platform and checks
// the outcome the Coordinator will see.
func TestVerifyAwkwardCases(t *testing.T) {
	p := create(t, Options{})
	body := testBody()
	quote, err := p.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	debugBody := body
	debugBody.Attributes.Flags |= sgx.AttrDebug
	debugQuote, err := p.Quote(debugBody)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		c     CollateralOptions
		quote []byte
		at    time.Time
		// want
		check           verify.Check
		is              error
		status          verify.TCBStatus
		platform, qe    verify.TCBStatus
		advisories      []string
		expired         []string // Validity items outside their window
		debug, crlCheck bool
	}{
		{name: "UpToDate", status: verify.UpToDate, crlCheck: true},
		{
			name: "SWHardeningNeeded", c: CollateralOptions{TCBStatus: verify.SWHardeningNeeded, AdvisoryIDs: []string{"INTEL-SA-00615", "INTEL-SA-00657"}},
			status: verify.SWHardeningNeeded, advisories: []string{"INTEL-SA-00615", "INTEL-SA-00657"}, crlCheck: true,
		},
		{
			name: "ConfigurationNeeded", c: CollateralOptions{TCBStatus: verify.ConfigurationNeeded, AdvisoryIDs: []string{"INTEL-SA-00289"}},
			status: verify.ConfigurationNeeded, advisories: []string{"INTEL-SA-00289"}, crlCheck: true,
		},
		{
			name: "OutOfDate", c: CollateralOptions{TCBStatus: verify.OutOfDate, AdvisoryIDs: []string{"INTEL-SA-00828"}},
			status: verify.OutOfDate, advisories: []string{"INTEL-SA-00828"}, crlCheck: true,
		},
		{name: "Revoked TCB level", c: CollateralOptions{TCBStatus: verify.Revoked}, status: verify.Revoked, crlCheck: true},
		{
			name: "QE OutOfDate", c: CollateralOptions{QETCBStatus: verify.OutOfDate, QEAdvisoryIDs: []string{"INTEL-SA-00615"}},
			status: verify.OutOfDate, platform: verify.UpToDate, qe: verify.OutOfDate, advisories: []string{"INTEL-SA-00615"}, crlCheck: true,
		},
		{name: "PCK revoked", c: CollateralOptions{RevokePCK: true}, check: verify.CheckRevocation, is: verify.ErrRevoked, crlCheck: true},
		{name: "PCK CA revoked", c: CollateralOptions{RevokePCKCA: true}, check: verify.CheckRevocation, is: verify.ErrRevoked, crlCheck: true},
		{
			name: "expired", c: CollateralOptions{IssueDate: testNow, NextUpdate: testNow.Add(30 * 24 * time.Hour)},
			at:     testNow.Add(31 * 24 * time.Hour),
			status: verify.UpToDate, expired: []string{"tcb_info", "qe_identity", "root_ca_crl", "pck_crl"}, crlCheck: true,
		},
		{
			name: "not yet valid", c: CollateralOptions{IssueDate: testNow.Add(24 * time.Hour), NextUpdate: testNow.Add(48 * time.Hour)},
			status: verify.UpToDate, expired: []string{"tcb_info", "qe_identity", "root_ca_crl", "pck_crl"}, crlCheck: true,
		},
		{name: "debug enclave", quote: debugQuote, status: verify.UpToDate, debug: true, crlCheck: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.c.IssueDate.IsZero() {
				tc.c.IssueDate = testNow
			}
			if err := p.WriteCollateral(dir, tc.c); err != nil {
				t.Fatal(err)
			}
			q := quote
			if tc.quote != nil {
				q = tc.quote
			}
			at := tc.at
			if at.IsZero() {
				at = verifyAt
			}
			r, err := verify.New(p.Root()).Verify(q, loadCollateral(t, dir), at)
			if tc.check != "" {
				if checkOf(err) != tc.check || !errors.Is(err, tc.is) {
					t.Errorf("Verify = %v; want a %s failure wrapping %v", err, tc.check, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			pl := r.Platform
			wantPlatform, wantQE := tc.platform, tc.qe
			if wantPlatform == "" {
				wantPlatform = tc.status
			}
			if wantQE == "" {
				wantQE = verify.UpToDate
			}
			if pl.TCBStatus != tc.status || pl.PlatformTCBStatus != wantPlatform || pl.QETCBStatus != wantQE {
				t.Errorf("status %s (platform %s, QE %s); want %s (%s, %s)", pl.TCBStatus, pl.PlatformTCBStatus, pl.QETCBStatus, tc.status, wantPlatform, wantQE)
			}
			if !slices.Equal(pl.AdvisoryIDs, tc.advisories) {
				t.Errorf("advisories %v, want %v", pl.AdvisoryIDs, tc.advisories)
			}
			var expired []string
			for _, e := range pl.Expired {
				expired = append(expired, e.Item)
			}
			slices.Sort(expired)
			want := slices.Sorted(slices.Values(tc.expired))
			if pl.CollateralExpired != (len(want) > 0) || !slices.Equal(expired, want) {
				t.Errorf("collateral expired %v, items %v; want %v", pl.CollateralExpired, expired, want)
			}
			if r.Enclave.Debug != tc.debug || pl.CRLChecked != tc.crlCheck {
				t.Errorf("debug %v, CRL checked %v; want %v, %v", r.Enclave.Debug, pl.CRLChecked, tc.debug, tc.crlCheck)
			}
		})
	}
}

// TestVerifyDebugRejectedByPolicy: a debug enclave's quote is valid; the default policy is what
// rejects it, as for real debug enclaves.
func TestVerifyDebugRejectedByPolicy(t *testing.T) {
	p := create(t, Options{})
	body := testBody()
	body.Attributes.Flags |= sgx.AttrDebug
	quote, err := p.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	r, err := verify.New(p.Root()).Verify(quote, loadCollateral(t, p.CollateralDir()), verifyAt)
	if err != nil {
		t.Fatal(err)
	}
	policy := verify.Policy{MREnclave: [][32]byte{body.MREnclave}}
	err = policy.Check(r)
	pe, ok := errors.AsType[*verify.PolicyError](err)
	if !ok || pe.Field != verify.FieldDebug {
		t.Errorf("Policy.Check(debug enclave) = %v; want a %s rejection", err, verify.FieldDebug)
	}
	policy.AllowDebug = true
	if err := policy.Check(r); err != nil {
		t.Errorf("Policy.Check with AllowDebug: %v", err)
	}
}

func BenchmarkQuoteAndVerify(b *testing.B) {
	p := create(b, Options{})
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		b.Fatal(err)
	}
	v := verify.New(p.Root())
	body := testBody()
	b.ReportAllocs()
	for b.Loop() {
		q, err := p.Quote(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Verify(q, col, verifyAt); err != nil {
			b.Fatal(err)
		}
	}
}
