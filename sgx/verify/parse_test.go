package verify_test

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func vectorNamed(t testing.TB, name string) *dcaptest.Vector {
	t.Helper()
	for _, v := range dcaptest.Load(t) {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %s", name)
	return nil
}

// editSigned decodes the signed value of key in body, applies edit, and re-encodes the body
// with a dummy signature (parsing does not verify it).
func editSigned(t *testing.T, body []byte, key string, edit func(m map[string]any)) []byte {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(top[key], &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	inner, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%s"}`, key, inner, strings.Repeat("ab", 64))
}

func levelAt(m map[string]any, i int) map[string]any {
	return m["tcbLevels"].([]any)[i].(map[string]any)
}

func TestParseTCBInfo(t *testing.T) {
	phala := vectorNamed(t, "phala-processor-config-swhardening").File(t, "tcb_info")
	v2 := vectorNamed(t, "dcaprs-platform-outofdate-tcbv2").File(t, "tcb_info")
	for _, tc := range []struct {
		name    string
		body    []byte
		edit    func(m map[string]any)
		wantErr string // "" for success
	}{
		{"version 3", phala, nil, ""},
		{"version 2", v2, nil, ""},
		{"unknown field tolerated", phala, func(m map[string]any) { m["futureField"] = []any{1, "x"} }, ""},
		{"unknown level field tolerated", phala, func(m map[string]any) { levelAt(m, 0)["note"] = "x" }, ""},
		{"version missing", phala, func(m map[string]any) { delete(m, "version") }, "tcbInfo.version: required field is missing"},
		{"version is a string", phala, func(m map[string]any) { m["version"] = "3" }, "tcbInfo.version: expected an integer, found string"},
		{"version 4", phala, func(m map[string]any) { m["version"] = 4 }, "tcbInfo.version: expected an integer in 2..3, found 4"},
		{"version is fractional", phala, func(m map[string]any) { m["version"] = 3.5 }, "tcbInfo.version: expected an integer"},
		{"TDX", phala, func(m map[string]any) { m["id"] = "TDX" }, `tcbInfo.id: "TDX" TCB Info is for TDX quotes`},
		{"other id", phala, func(m map[string]any) { m["id"] = "SEV" }, `tcbInfo.id: expected "SGX", found "SEV"`},
		{"version 3 without id", phala, func(m map[string]any) { delete(m, "id") }, "tcbInfo.id: required field is missing"},
		{"id null", phala, func(m map[string]any) { m["id"] = nil }, "tcbInfo.id: required field is missing or null"},
		{"short fmspc", phala, func(m map[string]any) { m["fmspc"] = "00A0671100" }, "tcbInfo.fmspc: expected 6 hex-encoded bytes"},
		{"fmspc not hex", phala, func(m map[string]any) { m["fmspc"] = "00A06711000G" }, "tcbInfo.fmspc: expected 6 hex-encoded bytes"},
		{"pceId missing", phala, func(m map[string]any) { delete(m, "pceId") }, "tcbInfo.pceId: required field is missing"},
		{"issueDate not a time", phala, func(m map[string]any) { m["issueDate"] = "yesterday" }, "tcbInfo.issueDate: expected an RFC 3339 time"},
		{"nextUpdate before issueDate", phala, func(m map[string]any) { m["nextUpdate"] = "2020-01-01T00:00:00Z" }, "tcbInfo.nextUpdate: expected a time after issueDate"},
		{"tcbType 1", phala, func(m map[string]any) { m["tcbType"] = 1 }, "tcbInfo.tcbType: expected an integer in 0..0, found 1"},
		{"negative evaluation number", phala, func(m map[string]any) { m["tcbEvaluationDataNumber"] = -1 }, "tcbInfo.tcbEvaluationDataNumber: expected an integer in 0..2147483647, found -1"},
		{"no levels", phala, func(m map[string]any) { m["tcbLevels"] = []any{} }, "tcbInfo.tcbLevels: expected 1..1024 levels, found 0"},
		{"levels missing", phala, func(m map[string]any) { delete(m, "tcbLevels") }, "tcbInfo.tcbLevels: required field is missing"},
		{"levels not an array", phala, func(m map[string]any) { m["tcbLevels"] = map[string]any{} }, "tcbInfo.tcbLevels: expected an array, found object"},
		{"unknown status", phala, func(m map[string]any) { levelAt(m, 1)["tcbStatus"] = "Fine" }, `tcbInfo.tcbLevels[1].tcbStatus: unknown TCB status "Fine"`},
		{"tcbDate missing", phala, func(m map[string]any) { delete(levelAt(m, 2), "tcbDate") }, "tcbInfo.tcbLevels[2].tcbDate: required field is missing"},
		{"tcb missing", phala, func(m map[string]any) { delete(levelAt(m, 0), "tcb") }, "tcbInfo.tcbLevels[0].tcb: required field is missing"},
		{"15 components", phala, func(m map[string]any) {
			tcb := levelAt(m, 0)["tcb"].(map[string]any)
			tcb["sgxtcbcomponents"] = tcb["sgxtcbcomponents"].([]any)[1:]
		}, "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents: expected 16 components, found 15"},
		{"component SVN 256", phala, func(m map[string]any) {
			levelAt(m, 3)["tcb"].(map[string]any)["sgxtcbcomponents"].([]any)[4].(map[string]any)["svn"] = 256
		}, "tcbInfo.tcbLevels[3].tcb.sgxtcbcomponents[4].svn: expected an integer in 0..255, found 256"},
		{"component SVN missing", phala, func(m map[string]any) {
			delete(levelAt(m, 0)["tcb"].(map[string]any)["sgxtcbcomponents"].([]any)[15].(map[string]any), "svn")
		}, "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[15].svn: required field is missing"},
		{"negative PCESVN", phala, func(m map[string]any) { levelAt(m, 0)["tcb"].(map[string]any)["pcesvn"] = -1 }, "tcbInfo.tcbLevels[0].tcb.pcesvn: expected an integer in 0..65535, found -1"},
		{"advisory ID not a string", phala, func(m map[string]any) { levelAt(m, 0)["advisoryIDs"] = []any{1} }, "tcbInfo.tcbLevels.advisoryIDs: expected a string, found number"},
		{"version 2 component missing", v2, func(m map[string]any) {
			delete(levelAt(m, 1)["tcb"].(map[string]any), "sgxtcbcomp05svn")
		}, "tcbInfo.tcbLevels[1].tcb.sgxtcbcomp05svn: required field is missing"},
		{"version 2 with id SGX", v2, func(m map[string]any) { m["id"] = "SGX" }, ""},
		{"version 2 with id TDX", v2, func(m map[string]any) { m["id"] = "TDX" }, `"TDX" TCB Info`},
		{"not JSON", []byte("tcbInfo"), nil, "expected a JSON object"},
		{"trailing data", append(bytes.Clone(phala), '}'), nil, "expected a JSON object"},
		{"tcbInfo not an object", []byte(`{"tcbInfo":[1],"signature":"00"}`), nil, "tcbInfo: expected a JSON object"},
		{"tcbInfo missing", []byte(`{"tcb":{},"signature":"00"}`), nil, "tcbInfo: required field is missing"},
		{"signature missing", []byte(`{"tcbInfo":{}}`), nil, "signature: required field is missing"},
		{"signature short", bytes.Replace(phala, []byte(`"signature":"`), []byte(`"signature":"00`), 1), nil, "signature: expected 64 hex-encoded bytes"},
		{"signature a number", []byte(`{"tcbInfo":{},"signature":5}`), nil, "signature: expected a string, found number"},
		{"larger than 1 MiB", append(bytes.Clone(phala), bytes.Repeat([]byte(" "), verify.MaxCollateralItemSize)...), nil, "larger than the 1048576 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.edit != nil {
				body = editSigned(t, body, "tcbInfo", tc.edit)
			}
			ti, err := verify.ParseTCBInfo(body)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseTCBInfo: %v", err)
				}
				if !bytes.Equal(ti.Raw(), body) || !bytes.Contains(body, ti.SignedBytes()) {
					t.Errorf("Raw/SignedBytes are not the body and a part of it")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseTCBInfo error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseTCBInfoValues(t *testing.T) {
	for _, tc := range []struct {
		vector  string
		version int
		id      string
		level   int
		comps   [16]uint8
		pcesvn  uint16
		status  verify.TCBStatus
		adv     []string
	}{
		{"phala-processor-config-swhardening", 3, "SGX", 1, [16]uint8{11, 11, 2, 2, 255, 1}, 13, verify.ConfigurationAndSWHardeningNeeded, []string{"INTEL-SA-00289", "INTEL-SA-00615"}},
		{"dcaprs-platform-outofdate-tcbv2", 2, "", 2, [16]uint8{12, 12, 3, 3, 255, 255, 1}, 13, verify.OutOfDate, nil},
		{"oasis-platform-swhardening", 3, "SGX", 0, [16]uint8{7, 9, 3, 3, 255, 255, 1}, 13, verify.SWHardeningNeeded, []string{"INTEL-SA-00615", "INTEL-SA-00657"}},
	} {
		t.Run(tc.vector, func(t *testing.T) {
			v := vectorNamed(t, tc.vector)
			ti, err := verify.ParseTCBInfo(v.File(t, "tcb_info"))
			if err != nil {
				t.Fatal(err)
			}
			want := v.Collateral.TCBInfo
			if ti.Version != tc.version || ti.ID != tc.id || ti.TCBEvaluationDataNumber != want.TCBEvaluationDataNumber ||
				!ti.IssueDate.Equal(want.IssueDate) || !ti.NextUpdate.Equal(want.NextUpdate) ||
				!strings.EqualFold(hex.EncodeToString(ti.FMSPC[:]), want.FMSPC) {
				t.Errorf("TCBInfo header = %d %q %d %v %v %x, want %+v", ti.Version, ti.ID, ti.TCBEvaluationDataNumber, ti.IssueDate, ti.NextUpdate, ti.FMSPC, want)
			}
			l := ti.Levels[tc.level]
			if l.CompSVN != tc.comps || l.PCESVN != tc.pcesvn || l.Status != tc.status || fmt.Sprint(l.AdvisoryIDs) != fmt.Sprint(tc.adv) {
				t.Errorf("level %d = %+v, want %v %d %s %v", tc.level, l, tc.comps, tc.pcesvn, tc.status, tc.adv)
			}
		})
	}
}

func TestParseQEIdentity(t *testing.T) {
	v := vectorNamed(t, "phala-processor-config-swhardening")
	body := v.File(t, "qe_identity")
	for _, tc := range []struct {
		name    string
		edit    func(m map[string]any)
		wantErr string
	}{
		{"valid", nil, ""},
		{"unknown field tolerated", func(m map[string]any) { m["tdxModule"] = map[string]any{} }, ""},
		{"QVE", func(m map[string]any) { m["id"] = "QVE" }, `enclaveIdentity.id: expected "QE" (the SGX Quoting Enclave), found "QVE"`},
		{"TD_QE", func(m map[string]any) { m["id"] = "TD_QE" }, `found "TD_QE"`},
		{"id missing", func(m map[string]any) { delete(m, "id") }, "enclaveIdentity.id: required field is missing"},
		{"version 1", func(m map[string]any) { m["version"] = 1 }, "enclaveIdentity.version: expected an integer in 2..2, found 1"},
		{"short mrsigner", func(m map[string]any) { m["mrsigner"] = "8C4F" }, "enclaveIdentity.mrsigner: expected 32 hex-encoded bytes"},
		{"miscselect missing", func(m map[string]any) { delete(m, "miscselect") }, "enclaveIdentity.miscselect: required field is missing"},
		{"attributesMask too long", func(m map[string]any) { m["attributesMask"] = strings.Repeat("FF", 17) }, "enclaveIdentity.attributesMask: expected 16 hex-encoded bytes"},
		{"isvprodid too large", func(m map[string]any) { m["isvprodid"] = 70000 }, "enclaveIdentity.isvprodid: expected an integer in 0..65535, found 70000"},
		{"isvsvn missing", func(m map[string]any) { delete(levelAt(m, 2)["tcb"].(map[string]any), "isvsvn") }, "enclaveIdentity.tcbLevels[2].tcb.isvsvn: required field is missing"},
		{"unknown status", func(m map[string]any) { levelAt(m, 0)["tcbStatus"] = "Great" }, `enclaveIdentity.tcbLevels[0].tcbStatus: unknown TCB status "Great"`},
		{"no levels", func(m map[string]any) { m["tcbLevels"] = []any{} }, "enclaveIdentity.tcbLevels: expected 1..1024 levels, found 0"},
		{"nextUpdate equals issueDate", func(m map[string]any) { m["nextUpdate"] = m["issueDate"] }, "enclaveIdentity.nextUpdate: expected a time after issueDate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if tc.edit != nil {
				b = editSigned(t, body, "enclaveIdentity", tc.edit)
			}
			qi, err := verify.ParseQEIdentity(b)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseQEIdentity: %v", err)
				}
				if qi.ISVProdID != 1 || hex.EncodeToString(qi.MRSigner[:]) != v.QEReport.MRSigner || qi.Levels[0].ISVSVN != 8 ||
					qi.AttributesMask != [16]byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} || qi.MiscSelectMask != [4]byte{0xff, 0xff, 0xff, 0xff} {
					t.Errorf("QEIdentity = %+v", qi)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseQEIdentity error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseCRL(t *testing.T) {
	der := vectorNamed(t, "dcaprs-platform-outofdate-tcbv2").File(t, "pck_crl")
	pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"DER", der, ""},
		{"PEM", pemCRL, ""},
		{"PEM with surrounding whitespace", append(append([]byte("\n "), pemCRL...), "\n\n"...), ""},
		{"PEM of another type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), `type "CERTIFICATE"`},
		{"PEM then garbage", append(bytes.Clone(pemCRL), "x"...), "unexpected bytes after the PEM block"},
		{"malformed PEM", []byte("-----BEGIN X509 CRL-----\n!!\n"), "malformed PEM block"},
		{"truncated DER", der[:len(der)-1], "CRL: x509"},
		{"DER with trailing data", append(bytes.Clone(der), 0), "CRL: 1 bytes after the DER encoding"},
		{"empty", nil, "CRL: x509"},
		{"larger than 1 MiB", make([]byte, verify.MaxCollateralItemSize+1), "larger than the 1048576 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crl, err := verify.ParseCRL(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseCRL: %v", err)
				}
				if !bytes.Equal(crl.Raw, der) || len(crl.RevokedCertificateEntries) != 44 {
					t.Errorf("ParseCRL = %d entries, raw equal %v; want the 44-entry CRL", len(crl.RevokedCertificateEntries), bytes.Equal(crl.Raw, der))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseCRL error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseCertChain(t *testing.T) {
	chain := vectorNamed(t, "phala-processor-config-swhardening").File(t, "tcb_info_issuer_chain")
	blocks := bytes.SplitAfter(chain, []byte("-----END CERTIFICATE-----\n"))
	reversed := append(bytes.Clone(blocks[1]), blocks[0]...)
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"signer then root", chain, ""},
		{"root then signer", reversed, ""},
		{"NUL byte", append(bytes.Clone(chain), 0), "unexpected NUL byte"},
		{"no certificate", []byte("\n"), "no certificate found"},
		{"text after", append(bytes.Clone(chain), "x"...), "unexpected bytes after the last PEM block"},
		{"larger than 1 MiB", make([]byte, verify.MaxCollateralItemSize+1), "larger than the 1048576 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := verify.ParseCertChain(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseCertChain: %v", err)
				}
				if len(certs) != 2 || certs[0].Subject.CommonName != "Intel SGX TCB Signing" || certs[1].Subject.CommonName != "Intel SGX Root CA" {
					t.Errorf("ParseCertChain = %d certificates, want TCB Signing then root", len(certs))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseCertChain error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestLoadCollateral checks that every vector folder loads with exactly the items it has.
func TestLoadCollateral(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			col := loadCollateral(t, v)
			has := func(role string) bool { return v.Files[role] != nil }
			for _, tc := range []struct {
				role string
				got  bool
			}{
				{"tcb_info", col.TCBInfo != nil},
				{"tcb_info_issuer_chain", col.TCBInfoIssuerChain != nil},
				{"qe_identity", col.QEIdentity != nil},
				{"qe_identity_issuer_chain", col.QEIdentityIssuerChain != nil},
				{"root_ca_crl", col.RootCACRL != nil},
				{"pck_crl", col.PCKCRL != nil},
				{"pck_crl_issuer_chain", col.PCKCRLIssuerChain != nil},
			} {
				if tc.got != has(tc.role) {
					t.Errorf("%s loaded = %v, vector.json has it = %v", tc.role, tc.got, has(tc.role))
				}
			}
		})
	}
}

// TestWriteDir checks that WriteDir writes what LoadCollateral reads back, byte for byte, and
// removes the files of absent items.
func TestWriteDir(t *testing.T) {
	ver := verify.New(verify.IntelRoot())
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			col := loadCollateral(t, v)
			dir := filepath.Join(t.TempDir(), "collateral")
			if err := col.WriteDir(dir); err != nil {
				t.Fatalf("WriteDir: %v", err)
			}
			back, err := verify.LoadCollateral(dir)
			if err != nil {
				t.Fatalf("LoadCollateral after WriteDir: %v", err)
			}
			if !sameCollateral(col, back) {
				t.Errorf("collateral read back differs from what was written")
			}
			r1, err1 := ver.Verify(v.File(t, "quote"), col, v.VerificationTime)
			r2, err2 := ver.Verify(v.File(t, "quote"), back, v.VerificationTime)
			if fmt.Sprint(err1) != fmt.Sprint(err2) || r1.Platform.TCBStatus != r2.Platform.TCBStatus {
				t.Errorf("Verify with written collateral = %v %q, want %v %q", err2, r2.Platform.TCBStatus, err1, r1.Platform.TCBStatus)
			}
			// Writing collateral without CRLs removes the CRL files.
			col.RootCACRL, col.PCKCRL, col.PCKCRLIssuerChain = nil, nil, nil
			if err := col.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			back, err = verify.LoadCollateral(dir)
			if err != nil || back.RootCACRL != nil || back.PCKCRL != nil || back.PCKCRLIssuerChain != nil {
				t.Errorf("after writing without CRLs: %v, CRLs %v %v", err, back.RootCACRL != nil, back.PCKCRL != nil)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func sameCollateral(a, b *verify.Collateral) bool {
	return slices.EqualFunc(collateralBytes(a), collateralBytes(b), bytes.Equal)
}

// collateralBytes lists the raw bytes of every item of c, with a marker for absent ones.
func collateralBytes(c *verify.Collateral) [][]byte {
	absent := []byte("absent")
	var out [][]byte
	if c.TCBInfo != nil {
		out = append(out, c.TCBInfo.Raw())
	}
	out = append(out, absent)
	if c.QEIdentity != nil {
		out = append(out, c.QEIdentity.Raw())
	}
	out = append(out, absent)
	for _, chain := range [][]*x509.Certificate{c.TCBInfoIssuerChain, c.QEIdentityIssuerChain, c.PCKCRLIssuerChain} {
		for _, cert := range chain {
			out = append(out, cert.Raw)
		}
		out = append(out, absent)
	}
	for _, crl := range []*x509.RevocationList{c.RootCACRL, c.PCKCRL} {
		if crl == nil {
			out = append(out, absent)
		} else {
			out = append(out, crl.Raw)
		}
	}
	return out
}

func TestLoadCollateralErrors(t *testing.T) {
	phala := vectorNamed(t, "phala-processor-config-swhardening")
	for _, tc := range []struct {
		name    string
		files   map[string][]byte
		wantErr string
	}{
		{"broken TCB Info", map[string][]byte{"tcb_info.json": []byte("{")}, "tcb_info.json: TCB Info"},
		{"broken chain", map[string][]byte{"tcb_info_issuer_chain.pem": []byte("x")}, "tcb_info_issuer_chain.pem: certificate chain"},
		{"CRL under two names", map[string][]byte{"root_ca_crl.der": phala.File(t, "root_ca_crl"), "root_ca_crl.pem": phala.File(t, "root_ca_crl")}, "both root_ca_crl.der and root_ca_crl.pem exist"},
		{"oversized file", map[string][]byte{"pck_crl": make([]byte, verify.MaxCollateralItemSize+1)}, "pck_crl: larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := verify.LoadCollateral(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LoadCollateral error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	// A PEM CRL under the bare name loads.
	dir := t.TempDir()
	crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: phala.File(t, "pck_crl")})
	if err := os.WriteFile(filepath.Join(dir, "pck_crl"), crl, 0o644); err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(dir)
	if err != nil || col.PCKCRL == nil || col.TCBInfo != nil {
		t.Errorf("LoadCollateral(PEM pck_crl) = %+v, %v; want only the PCK CRL", col, err)
	}
	if _, err := verify.LoadCollateral(filepath.Join(dir, "absent")); err == nil {
		t.Errorf("LoadCollateral of a missing directory succeeded")
	}
	// Collateral built by hand, without PCS bodies, cannot be written.
	if err := (&verify.Collateral{TCBInfo: &verify.TCBInfo{Version: 3}}).WriteDir(t.TempDir()); err == nil {
		t.Errorf("WriteDir of an unparsed TCBInfo succeeded")
	}
}
