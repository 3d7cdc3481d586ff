package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

var enclaveBody = sgx.ReportBody{
	MREnclave:  [32]byte{1, 2, 3},
	MRSigner:   [32]byte{4, 5, 6},
	ISVProdID:  7,
	ISVSVN:     2,
	Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit, XFRM: 3},
	ReportData: [64]byte{0xaa},
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestScenarios verifies synthetic quotes and collateral built to reach each outcome.
func TestScenarios(t *testing.T) {
	type outcome struct {
		check      verify.Check // "" for success
		sentinel   error
		status     verify.TCBStatus
		platform   verify.TCBStatus
		qe         verify.TCBStatus
		advisories []string
		contains   string // substring of the error
	}
	ok := func(status, platform, qe verify.TCBStatus, adv ...string) outcome {
		return outcome{status: status, platform: platform, qe: qe, advisories: adv}
	}
	failAt := func(c verify.Check, sentinel error, contains string) outcome {
		return outcome{check: c, sentinel: sentinel, contains: contains}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, s *synth) ([]byte, *verify.Collateral)
		want  outcome
	}{
		{"platform level 1, QE up to date", nil,
			ok(verify.SWHardeningNeeded, verify.SWHardeningNeeded, verify.UpToDate, "INTEL-SA-00615")},
		{"highest level matches", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.ext.TCB.CompSVN[0], s.ext.TCB.CompSVN[1] = 9, 9
			s.issue()
			return nil, nil
		}, ok(verify.UpToDate, verify.UpToDate, verify.UpToDate)},
		{"lower PCESVN selects a lower level", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.ext.TCB.PCESVN = 10
			s.issue()
			return nil, nil
		}, ok(verify.OutOfDate, verify.OutOfDate, verify.UpToDate, "INTEL-SA-00615", "INTEL-SA-00001")},
		{"QE out of date makes the platform out of date", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.ISVSVN = 7
			return nil, nil
		}, ok(verify.OutOfDate, verify.SWHardeningNeeded, verify.OutOfDate, "INTEL-SA-00615")},
		{"QE out of date and configuration needed", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.tcbLevels[1]["tcbStatus"] = "ConfigurationAndSWHardeningNeeded"
			s.qeLevels[1]["advisoryIDs"] = []string{"INTEL-SA-00999"}
			s.qeReport.ISVSVN = 6
			return nil, nil
		}, ok(verify.OutOfDateConfigurationNeeded, verify.ConfigurationAndSWHardeningNeeded, verify.OutOfDate, "INTEL-SA-00615", "INTEL-SA-00999")},
		{"QE revoked", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeLevels[1]["tcbStatus"] = "Revoked"
			s.qeReport.ISVSVN = 6
			return nil, nil
		}, ok(verify.Revoked, verify.SWHardeningNeeded, verify.Revoked, "INTEL-SA-00615")},
		{"QE ISVSVN below every level", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.ISVSVN = 5
			return nil, nil
		}, outcome{check: verify.CheckTCBLevel, sentinel: verify.ErrTCBLevelNotSupported, contains: "QE ISVSVN 5", platform: verify.SWHardeningNeeded}},
		{"platform TCB below every level", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.ext.TCB.CompSVN[2] = 1
			s.issue()
			return nil, nil
		}, failAt(verify.CheckTCBLevel, verify.ErrTCBLevelNotSupported, "no level of TCB Info")},
		{"lower-case FMSPC in TCB Info", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.tcbFMSPC = "00906ea10000"
			return nil, nil
		}, ok(verify.SWHardeningNeeded, verify.SWHardeningNeeded, verify.UpToDate, "INTEL-SA-00615")},
		{"TCB Info for another FMSPC", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.tcbFMSPC = "00906EA20000"
			return nil, nil
		}, failAt(verify.CheckTCBInfoMatch, nil, "FMSPC 00906EA20000")},
		{"PCK certificate revoked", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.pckRevoked = []*big.Int{big.NewInt(1), s.pck.SerialNumber}
			return nil, nil
		}, failAt(verify.CheckRevocation, verify.ErrRevoked, "PCK CRL")},
		{"PCK CA revoked", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.rootRevoked = []*big.Int{s.ca.SerialNumber}
			return nil, nil
		}, failAt(verify.CheckRevocation, verify.ErrRevoked, "Test SGX PCK Processor CA")},
		{"TCB Signing certificate revoked", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.rootRevoked = []*big.Int{s.tcb.SerialNumber}
			return nil, nil
		}, failAt(verify.CheckRevocation, verify.ErrRevoked, "Test SGX TCB Signing")},
		{"PCK CRL of another CA", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.PCKCRL = s.crl(s.root, s.rootKey, nil)
			return nil, col
		}, failAt(verify.CheckPCKCRL, nil, "expected the PCK certificate's issuer")},
		{"PCK CRL signed by another key", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			other := newKey(t)
			fake := s.cert(s.ca.Subject.CommonName, &other.PublicKey, s.root, s.rootKey, true, 0, nil)
			col := s.collateral()
			col.PCKCRL = s.crl(fake, other, nil)
			return nil, col
		}, failAt(verify.CheckPCKCRL, verify.ErrInvalidSignature, "")},
		{"root CRL signed by another key", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			other := newKey(t)
			fake := s.cert(s.root.Subject.CommonName, &other.PublicKey, nil, other, true, 1, nil)
			col := s.collateral()
			col.RootCACRL = s.crl(fake, other, nil)
			return nil, col
		}, failAt(verify.CheckRootCACRL, verify.ErrInvalidSignature, "")},
		{"PCK key signs TCB Info", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.TCBInfo = mustTCBInfo(t, s.tcbInfoJSON(s.pckKey))
			col.TCBInfoIssuerChain = []*x509.Certificate{s.pck, s.ca, s.root}
			return nil, col
		}, failAt(verify.CheckTCBInfoIssuerChain, nil, "expected 2 certificates")},
		{"PCK CA key signs TCB Info", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.TCBInfo = mustTCBInfo(t, s.tcbInfoJSON(s.caKey))
			col.TCBInfoIssuerChain = []*x509.Certificate{s.ca, s.root}
			return nil, col
		}, failAt(verify.CheckTCBInfoIssuerChain, nil, "does not contain")},
		{"TCB Info signed by another key", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.TCBInfo = mustTCBInfo(t, s.tcbInfoJSON(newKey(t)))
			return nil, col
		}, failAt(verify.CheckTCBInfoSignature, verify.ErrInvalidSignature, "")},
		{"QE Identity without its chain falls back to the TCB Info chain", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.QEIdentityIssuerChain = nil
			return nil, col
		}, ok(verify.SWHardeningNeeded, verify.SWHardeningNeeded, verify.UpToDate, "INTEL-SA-00615")},
		{"QE Identity signing chain without root", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.QEIdentityIssuerChain = []*x509.Certificate{s.tcb}
			return nil, col
		}, failAt(verify.CheckQEIdentityIssuerChain, nil, "expected 2 certificates")},
		{"QE MRSIGNER differs", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.MRSigner[0] ^= 1
			return nil, nil
		}, failAt(verify.CheckQEIdentity, nil, "MRSIGNER")},
		{"debug QE", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.Attributes.Flags |= sgx.AttrDebug
			return nil, nil
		}, failAt(verify.CheckQEIdentity, nil, "ATTRIBUTES")},
		{"QE MISCSELECT differs", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.MiscSelect = 1
			return nil, nil
		}, failAt(verify.CheckQEIdentity, nil, "MISCSELECT")},
		{"QE ISVPRODID differs", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.qeReport.ISVProdID = 2
			return nil, nil
		}, failAt(verify.CheckQEIdentity, nil, "ISVPRODID")},
		{"another QE vendor", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			return s.quote(enclaveBody, func(q *sgx.Quote) { q.Header.QEVendorID[0] ^= 1 }), nil
		}, failAt(verify.CheckQEVendorID, nil, "QE vendor ID")},
		{"attestation key not on the curve", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			return s.quote(enclaveBody, func(q *sgx.Quote) { q.AttestationKey = [64]byte{1} }), nil
		}, failAt(verify.CheckQuoteSignature, nil, "P-256")},
		{"missing QE Identity", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.QEIdentity, col.QEIdentityIssuerChain = nil, nil
			return nil, col
		}, outcome{check: verify.CheckCollateral, sentinel: verify.ErrCollateralMissing, contains: "qe_identity", platform: verify.SWHardeningNeeded}},
		{"missing TCB Info issuer chain", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.TCBInfoIssuerChain = nil
			return nil, col
		}, outcome{check: verify.CheckCollateral, sentinel: verify.ErrCollateralMissing, contains: "tcb_info_issuer_chain", qe: verify.UpToDate}},
		{"no CRLs", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			col := s.collateral()
			col.RootCACRL, col.PCKCRL = nil, nil
			return nil, col
		}, ok(verify.SWHardeningNeeded, verify.SWHardeningNeeded, verify.UpToDate, "INTEL-SA-00615")},
		{"re-issued root certificate with the pinned key", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			old := s.root
			s.now = s.now.AddDate(-2, 0, 0)
			s.root = s.cert(old.Subject.CommonName, &s.rootKey.PublicKey, nil, s.rootKey, true, 1, nil)
			s.now = s.now.AddDate(2, 0, 0)
			q := s.quote(enclaveBody)
			s.root = old
			return q, nil
		}, ok(verify.SWHardeningNeeded, verify.SWHardeningNeeded, verify.UpToDate, "INTEL-SA-00615")},
		{"root with the pinned key but another key's signature", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			old := s.root
			s.root = s.cert(old.Subject.CommonName, &s.rootKey.PublicKey, nil, newKey(t), true, 1, nil)
			q := s.quote(enclaveBody)
			s.root = old
			return q, nil
		}, failAt(verify.CheckPCKChain, verify.ErrUntrustedRoot, "not validly self-signed")},
		{"PCK certificate without the SGX extension", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			s.pck = s.cert("Test SGX PCK Certificate", &s.pckKey.PublicKey, s.ca, s.caKey, false, -1, nil)
			return nil, nil
		}, failAt(verify.CheckPCKCertificate, nil, "no SGX extension")},
		{"PCK certificate with another name", func(t *testing.T, s *synth) ([]byte, *verify.Collateral) {
			der, _ := s.ext.Marshal()
			s.pck = s.cert("Test Certificate", &s.pckKey.PublicKey, s.ca, s.caKey, false, -1, []pkix.Extension{{Id: sgx.OIDSGXExtensions, Value: der}})
			return nil, nil
		}, failAt(verify.CheckPCKChain, nil, `does not contain "SGX PCK Certificate"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth(t)
			var quote []byte
			var col *verify.Collateral
			if tc.setup != nil {
				quote, col = tc.setup(t, s)
			}
			if quote == nil {
				quote = s.quote(enclaveBody)
			}
			if col == nil {
				col = s.collateral()
			}
			res, err := s.verifier().Verify(quote, col, s.now)
			if res == nil {
				t.Fatalf("Verify: nil Result (err %v)", err)
			}
			w := tc.want
			if got := checkOf(err); got != w.check || (w.check == "" && err != nil) {
				t.Fatalf("Verify error = %v (check %q), want check %q", err, got, w.check)
			}
			if w.sentinel != nil && !errors.Is(err, w.sentinel) {
				t.Errorf("Verify error = %v, want %v", err, w.sentinel)
			}
			if err != nil && !strings.Contains(err.Error(), w.contains) {
				t.Errorf("Verify error = %q, want it to contain %q", err, w.contains)
			}
			p := res.Platform
			if p.TCBStatus != w.status || p.PlatformTCBStatus != w.platform || p.QETCBStatus != w.qe {
				t.Errorf("statuses = %q/%q/%q, want %q/%q/%q", p.TCBStatus, p.PlatformTCBStatus, p.QETCBStatus, w.status, w.platform, w.qe)
			}
			if err == nil && !slices.Equal(p.AdvisoryIDs, w.advisories) {
				t.Errorf("AdvisoryIDs = %v, want %v", p.AdvisoryIDs, w.advisories)
			}
		})
	}
}

func mustTCBInfo(t testing.TB, b []byte) *verify.TCBInfo {
	t.Helper()
	ti, err := verify.ParseTCBInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

// TestVerifyQuoteUsesFields checks that VerifyQuote verifies the quote q's fields describe: a
// parsed quote changed afterwards fails the quote signature.
func TestVerifyQuoteUsesFields(t *testing.T) {
	s := newSynth(t)
	q, err := sgx.ParseQuote(s.quote(enclaveBody))
	if err != nil {
		t.Fatal(err)
	}
	ver, col := s.verifier(), s.collateral()
	if _, err := ver.VerifyQuote(q, col, s.now); err != nil {
		t.Fatalf("VerifyQuote: %v", err)
	}
	q.Body.MREnclave[0] ^= 1
	res, err := ver.VerifyQuote(q, col, s.now)
	if checkOf(err) != verify.CheckQuoteSignature {
		t.Fatalf("VerifyQuote of a changed quote: %v, want a %s failure", err, verify.CheckQuoteSignature)
	}
	if res.Enclave.MREnclave != q.Body.MREnclave {
		t.Errorf("Result MREnclave %x is not the quote's %x", res.Enclave.MREnclave, q.Body.MREnclave)
	}
	if _, err := ver.VerifyQuote(nil, col, s.now); checkOf(err) != verify.CheckQuoteFormat {
		t.Errorf("VerifyQuote(nil) = %v, want a %s failure", err, verify.CheckQuoteFormat)
	}
}

// TestResultIsACopy checks that changing a Result does not change what the Verifier cached.
func TestResultIsACopy(t *testing.T) {
	s := newSynth(t)
	ver, col, quote := s.verifier(), s.collateral(), s.quote(enclaveBody)
	r1, err := ver.Verify(quote, col, s.now)
	if err != nil {
		t.Fatal(err)
	}
	r1.Platform.PCK.FMSPC[0] ^= 1
	r1.Platform.AdvisoryIDs[0] = "changed"
	col.TCBInfo.Levels[1].Status = verify.UpToDate // fields are not what is verified
	r2, err := ver.Verify(quote, col, s.now)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Platform.PCK.FMSPC != s.ext.FMSPC || r2.Platform.AdvisoryIDs[0] != "INTEL-SA-00615" || r2.Platform.TCBStatus != verify.SWHardeningNeeded {
		t.Errorf("second Result %+v reflects changes made to the first or to parsed fields", r2.Platform)
	}
}
