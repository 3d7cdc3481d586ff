package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// intelRootSPKI is the SHA-256 of the Intel SGX Root CA's SubjectPublicKeyInfo (README).
const intelRootSPKI = "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e"

func loadCollateral(t testing.TB, v *dcaptest.Vector) *verify.Collateral {
	t.Helper()
	col, err := verify.LoadCollateral(v.Dir)
	if err != nil {
		t.Fatalf("LoadCollateral(%s): %v", v.Name, err)
	}
	return col
}

func checkOf(err error) verify.Check {
	if ce, ok := errors.AsType[*verify.CheckError](err); ok {
		return ce.Check
	}
	return ""
}

func TestIntelRoot(t *testing.T) {
	root := verify.IntelRoot()
	spki := sha256.Sum256(root.RawSubjectPublicKeyInfo)
	if got := hex.EncodeToString(spki[:]); got != intelRootSPKI {
		t.Errorf("IntelRoot SPKI SHA-256 = %s, want %s", got, intelRootSPKI)
	}
	want, err := os.ReadFile(filepath.Join(dcaptest.Root(), "intel_sgx_root_ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("intel_sgx_root_ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(embedded, want) {
		t.Errorf("embedded intel_sgx_root_ca.pem differs from testdata/dcap/intel_sgx_root_ca.pem")
	}
	if again := verify.IntelRoot(); again == root {
		t.Errorf("IntelRoot returned the same pointer twice; want a fresh copy")
	}
}

// TestVectors verifies every real quote at its recorded instant and compares the result with
// what the independent checker recorded in vector.json.
func TestVectors(t *testing.T) {
	ver := verify.New(verify.IntelRoot())
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			col := loadCollateral(t, v)
			res, err := ver.Verify(v.File(t, "quote"), col, v.VerificationTime)
			if res == nil {
				t.Fatalf("Verify: nil Result (err %v)", err)
			}
			e := v.Expected
			if e.TCBStatus == nil {
				// No TCB Info or QE Identity upstream: every other check passes first.
				if !errors.Is(err, verify.ErrCollateralMissing) || checkOf(err) != verify.CheckCollateral {
					t.Fatalf("Verify error = %v, want ErrCollateralMissing from check %q", err, verify.CheckCollateral)
				}
				for _, item := range []string{"tcb_info", "qe_identity"} {
					if !strings.Contains(err.Error(), item) {
						t.Errorf("error %q does not name missing %s", err, item)
					}
				}
				if res.Platform.TCBStatus != "" {
					t.Errorf("TCBStatus = %q, want empty (not evaluable)", res.Platform.TCBStatus)
				}
			} else {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				p := res.Platform
				checkStr(t, "tcb_status", string(p.TCBStatus), *e.TCBStatus)
				checkStr(t, "platform_tcb_status", string(p.PlatformTCBStatus), *e.PlatformTCBStatus)
				checkStr(t, "qe_tcb_status", string(p.QETCBStatus), *e.QETCBStatus)
				if !slices.Equal(p.AdvisoryIDs, e.AdvisoryIDs) && !(len(p.AdvisoryIDs) == 0 && len(e.AdvisoryIDs) == 0) {
					t.Errorf("AdvisoryIDs = %v, want %v", p.AdvisoryIDs, e.AdvisoryIDs)
				}
				if p.TCBLevelIndex != *e.PlatformTCBLevelIndex {
					t.Errorf("TCBLevelIndex = %d, want %d", p.TCBLevelIndex, *e.PlatformTCBLevelIndex)
				}
				if !p.TCBDate.Equal(*e.PlatformTCBDate) {
					t.Errorf("TCBDate = %v, want %v", p.TCBDate, *e.PlatformTCBDate)
				}
				if want := v.Collateral.TCBInfo.TCBEvaluationDataNumber; p.TCBEvaluationDataNumber != min(want, v.Collateral.QEIdentity.TCBEvaluationDataNumber) {
					t.Errorf("TCBEvaluationDataNumber = %d, want %d", p.TCBEvaluationDataNumber, want)
				}
			}
			p := res.Platform
			if res.Enclave.Debug != e.DebugEnclave {
				t.Errorf("Debug = %v, want %v", res.Enclave.Debug, e.DebugEnclave)
			}
			checkStr(t, "mrenclave", hex.EncodeToString(res.Enclave.MREnclave[:]), v.Enclave.MREnclave)
			checkStr(t, "reportdata", hex.EncodeToString(res.Enclave.ReportData[:]), v.Enclave.ReportData)
			checkStr(t, "fmspc", strings.ToUpper(hex.EncodeToString(p.FMSPC[:])), strings.ToUpper(v.PCK.FMSPC))
			checkStr(t, "pce_id", hex.EncodeToString(p.PCEID[:]), v.PCK.PCEID)
			checkStr(t, "ca_type", string(p.CAType), v.PCK.CAType)
			if p.PCK == nil || int(p.PCK.TCB.PCESVN) != v.PCK.PCESVN {
				t.Errorf("PCK extension PCESVN = %v, want %d", p.PCK, v.PCK.PCESVN)
			}
			if res.Header.QESVN != uint16(v.Quote.QESVN) {
				t.Errorf("Header.QESVN = %d, want %d", res.Header.QESVN, v.Quote.QESVN)
			}
			wantCRL := v.Files["root_ca_crl"] != nil && v.Files["pck_crl"] != nil
			if p.CRLChecked != wantCRL {
				t.Errorf("CRLChecked = %v, want %v", p.CRLChecked, wantCRL)
			}
			if p.CollateralExpired || len(p.Expired) != 0 {
				t.Errorf("CollateralExpired = %v %v at the recorded instant, want false", p.CollateralExpired, p.Expired)
			}
			if !p.CollateralExpiry.Equal(v.ValidWindow.To) {
				t.Errorf("CollateralExpiry = %v, want %v (collateral_valid_window.to)", p.CollateralExpiry, v.ValidWindow.To)
			}
			if err := ver.CheckCollateral(col, v.VerificationTime); err != nil {
				t.Errorf("CheckCollateral: %v", err)
			}
		})
	}
}

func checkStr(t *testing.T, name, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

// TestSignedBody checks that the exact signed bytes are the range vector.json records.
func TestSignedBody(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		if v.Collateral.TCBInfo == nil {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			for _, tc := range []struct {
				role string
				sb   dcaptest.SignedBody
				get  func([]byte) ([]byte, error)
			}{
				{"tcb_info", v.Collateral.TCBInfo.SignedBody, func(b []byte) ([]byte, error) {
					ti, err := verify.ParseTCBInfo(b)
					if err != nil {
						return nil, err
					}
					return ti.SignedBytes(), nil
				}},
				{"qe_identity", v.Collateral.QEIdentity.SignedBody, func(b []byte) ([]byte, error) {
					qi, err := verify.ParseQEIdentity(b)
					if err != nil {
						return nil, err
					}
					return qi.SignedBytes(), nil
				}},
			} {
				file := v.File(t, tc.role)
				got, err := tc.get(file)
				if err != nil {
					t.Fatalf("%s: %v", tc.role, err)
				}
				want := file[tc.sb.Offset : tc.sb.Offset+tc.sb.Length]
				sum := sha256.Sum256(got)
				if !bytes.Equal(got, want) || hex.EncodeToString(sum[:]) != tc.sb.SHA256 {
					t.Errorf("%s: signed bytes (%d, sha256 %x) are not file[%d:+%d] (sha256 %s)", tc.role, len(got), sum, tc.sb.Offset, tc.sb.Length, tc.sb.SHA256)
				}
			}
		})
	}
}

// TestExpiredCollateral verifies at 1 s before the collateral window opens and 1 s after it
// closes: CollateralExpired names the items that bound the window, it is not an error, and the
// default policy rejects it.
func TestExpiredCollateral(t *testing.T) {
	ver := verify.New(verify.IntelRoot())
	for _, v := range dcaptest.Load(t) {
		col := loadCollateral(t, v)
		var setBy struct{ from, to []string }
		setBy.from, setBy.to = windowSetBy(t, v)
		for _, tc := range []struct {
			name  string
			at    time.Time
			items []string
		}{
			{"before", v.ValidWindow.From.Add(-time.Second), setBy.from},
			{"after", v.ValidWindow.To.Add(time.Second), setBy.to},
		} {
			t.Run(v.Name+"/"+tc.name, func(t *testing.T) {
				res, err := ver.Verify(v.File(t, "quote"), col, tc.at)
				if v.Expected.TCBStatus == nil {
					if !errors.Is(err, verify.ErrCollateralMissing) {
						t.Fatalf("Verify error = %v, want ErrCollateralMissing", err)
					}
				} else if err != nil {
					t.Fatalf("Verify: %v (expired collateral must not be an error)", err)
				}
				p := res.Platform
				if !p.CollateralExpired {
					t.Fatalf("CollateralExpired = false at %v", tc.at)
				}
				var got []string
				for _, e := range p.Expired {
					got = append(got, e.Item)
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.items) {
					t.Errorf("Expired items = %v, want %v", p.Expired, tc.items)
				}
				// The default policy (only an identity set) rejects expired collateral; allowing
				// it removes that rejection.
				pol := verify.Policy{MREnclave: [][32]byte{res.Enclave.MREnclave}}
				if perr := pol.Check(res); !hasPolicyField(perr, verify.FieldCollateral) {
					t.Errorf("default Policy.Check = %v, want a %s rejection", perr, verify.FieldCollateral)
				}
				pol.AllowExpiredCollateral = true
				if perr := pol.Check(res); hasPolicyField(perr, verify.FieldCollateral) {
					t.Errorf("Policy.Check with AllowExpiredCollateral = %v, want no %s rejection", perr, verify.FieldCollateral)
				}
				if err := ver.CheckCollateral(col, tc.at); !errors.Is(err, verify.ErrCollateralExpired) {
					t.Errorf("CheckCollateral = %v, want ErrCollateralExpired", err)
				}
			})
		}
	}
}

// windowSetBy maps vector.json's from_set_by / to_set_by onto Validity item names.
func windowSetBy(t *testing.T, v *dcaptest.Vector) (from, to []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.Dir, "vector.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Window struct {
			From []string `json:"from_set_by"`
			To   []string `json:"to_set_by"`
		} `json:"collateral_valid_window"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	slices.Sort(doc.Window.From)
	slices.Sort(doc.Window.To)
	return doc.Window.From, doc.Window.To
}

// TestOtherRoot verifies each quote against a root with another key: the PCK chain check fails
// with ErrUntrustedRoot.
func TestOtherRoot(t *testing.T) {
	ver := verify.New(selfSignedRoot(t))
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			res, err := ver.Verify(v.File(t, "quote"), loadCollateral(t, v), v.VerificationTime)
			if checkOf(err) != verify.CheckPCKChain || !errors.Is(err, verify.ErrUntrustedRoot) {
				t.Fatalf("Verify error = %v, want ErrUntrustedRoot from %s", err, verify.CheckPCKChain)
			}
			if res == nil || res.Enclave.MREnclave == ([32]byte{}) {
				t.Errorf("Result = %v, want the parsed quote", res)
			}
		})
	}
}

func selfSignedRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Intel SGX Root CA"},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// policyErrors returns every *PolicyError in err's tree.
func policyErrors(err error) []*verify.PolicyError {
	var out []*verify.PolicyError
	var walk func(error)
	walk = func(err error) {
		if pe, ok := err.(*verify.PolicyError); ok {
			out = append(out, pe)
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func hasPolicyField(err error, f verify.PolicyField) bool {
	for _, pe := range policyErrors(err) {
		if pe.Field == f {
			return true
		}
	}
	return false
}
