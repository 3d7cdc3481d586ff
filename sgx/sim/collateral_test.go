package sim

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// collateralFiles are the files of a real collateral directory (testdata/dcap/README.md).
var collateralFiles = []string{
	fileTCBInfo, fileTCBInfoChain, fileQEIdentity, fileQEIdentityChain,
	fileRootCACRL, filePCKCRL, filePCKCRLIssuerChain,
}

// testTCBInfo and testQEIdentity decode the signed JSON for checks.
type testTCBInfo struct {
	ID                      string         `json:"id"`
	Version                 int            `json:"version"`
	IssueDate               time.Time      `json:"issueDate"`
	NextUpdate              time.Time      `json:"nextUpdate"`
	FMSPC                   string         `json:"fmspc"`
	PCEID                   string         `json:"pceId"`
	TCBType                 int            `json:"tcbType"`
	TCBEvaluationDataNumber int            `json:"tcbEvaluationDataNumber"`
	TCBLevels               []testTCBLevel `json:"tcbLevels"`
}

type testTCBLevel struct {
	TCB struct {
		SGXTCBComponents []struct {
			SVN int `json:"svn"`
		} `json:"sgxtcbcomponents"`
		PCESVN int `json:"pcesvn"`
		ISVSVN int `json:"isvsvn"` // QE Identity levels
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

type testQEIdentity struct {
	ID                      string         `json:"id"`
	Version                 int            `json:"version"`
	IssueDate               time.Time      `json:"issueDate"`
	NextUpdate              time.Time      `json:"nextUpdate"`
	TCBEvaluationDataNumber int            `json:"tcbEvaluationDataNumber"`
	MiscSelect              string         `json:"miscselect"`
	MiscSelectMask          string         `json:"miscselectMask"`
	Attributes              string         `json:"attributes"`
	AttributesMask          string         `json:"attributesMask"`
	MRSigner                string         `json:"mrsigner"`
	ISVProdID               int            `json:"isvprodid"`
	TCBLevels               []testTCBLevel `json:"tcbLevels"`
}

// checkSignedJSON checks a PCS-shaped response in dir: the signed value starts right after
// {"<key>": as in Intel's files, is compact, and its signature verifies with the TCB Signing
// certificate of the issuer chain, which chains to root. It returns the signed bytes.
func checkSignedJSON(t *testing.T, dir, file, chainFile, key string, root *x509.Certificate) []byte {
	t.Helper()
	b := readTestFile(t, dir, file)
	body, sig := signedBody(t, b, key)
	prefix := `{"` + key + `":`
	if !bytes.HasPrefix(b, []byte(prefix)) || !bytes.Equal(b[len(prefix):len(prefix)+len(body)], body) {
		t.Errorf("%s: signed value does not start right after %s", file, prefix)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil || !bytes.Equal(compact.Bytes(), body) {
		t.Errorf("%s: signed value is not compact JSON (%v)", file, err)
	}
	chain := readCerts(t, dir, chainFile)
	if len(chain) != 2 || chain[0].Subject.CommonName != TCBSigningName || !chain[1].Equal(root) {
		t.Fatalf("%s: want the TCB Signing certificate and the root", chainFile)
	}
	if err := chain[0].CheckSignatureFrom(root); err != nil {
		t.Errorf("%s: TCB Signing certificate not signed by the root: %v", chainFile, err)
	}
	verifyRS(t, file, chain[0].PublicKey, body, sig)
	return body
}

func TestCollateralSignaturesAndShape(t *testing.T) {
	p := create(t, Options{})
	dir := p.CollateralDir()

	tcbBody := checkSignedJSON(t, dir, fileTCBInfo, fileTCBInfoChain, "tcbInfo", p.Root())
	qeBody := checkSignedJSON(t, dir, fileQEIdentity, fileQEIdentityChain, "enclaveIdentity", p.Root())

	// Member order as in Intel's files.
	var real *dcaptest.Vector
	for _, v := range dcaptest.Load(t) {
		if v.Name == "phala-processor-config-swhardening" {
			real = v
		}
	}
	if real == nil {
		t.Fatal("test vector phala-processor-config-swhardening not found")
	}
	realTCB, _ := signedBody(t, real.File(t, "tcb_info"), "tcbInfo")
	realQE, _ := signedBody(t, real.File(t, "qe_identity"), "enclaveIdentity")
	for _, c := range []struct {
		what      string
		sim, real []byte
	}{
		{"tcbInfo", tcbBody, realTCB},
		{"tcbInfo level with advisories", levelWithAdvisories(t, tcbBody), levelWithAdvisories(t, realTCB)},
		{"enclaveIdentity", qeBody, realQE},
		{"enclaveIdentity level with advisories", levelWithAdvisories(t, qeBody), levelWithAdvisories(t, realQE)},
	} {
		if got, want := objectKeys(t, c.sim), objectKeys(t, c.real); !slices.Equal(got, want) {
			t.Errorf("%s members = %v, want Intel's %v", c.what, got, want)
		}
	}

	var ti testTCBInfo
	if err := json.Unmarshal(tcbBody, &ti); err != nil {
		t.Fatal(err)
	}
	if ti.ID != "SGX" || ti.Version != 3 || ti.TCBType != 0 || ti.FMSPC != "00AA55000000" || ti.PCEID != "0000" ||
		ti.TCBEvaluationDataNumber != DefaultTCBEvaluationDataNumber {
		t.Errorf("TCB Info = %+v; want id SGX, version 3, tcbType 0, fmspc 00AA55000000, pceId 0000, evaluation number %d", ti, DefaultTCBEvaluationDataNumber)
	}
	if !ti.IssueDate.Equal(testNow) || !ti.NextUpdate.Equal(testNow.Add(DefaultCollateralValidity)) {
		t.Errorf("TCB Info dates %v .. %v, want %v .. +90 days", ti.IssueDate, ti.NextUpdate, testNow)
	}
	var qi testQEIdentity
	if err := json.Unmarshal(qeBody, &qi); err != nil {
		t.Fatal(err)
	}
	qe := p.QEIdentity()
	if qi.ID != "QE" || qi.Version != 2 || qi.ISVProdID != 1 || qi.MiscSelect != "00000000" || qi.MiscSelectMask != "FFFFFFFF" ||
		qi.Attributes != "11000000000000000000000000000000" || qi.AttributesMask != "FBFFFFFFFFFFFFFF0000000000000000" ||
		qi.MRSigner != upperHex(qe.MRSigner[:]) {
		t.Errorf("QE Identity = %+v; want id QE, version 2, isvprodid 1, Intel's masks and attributes, mrsigner %X", qi, qe.MRSigner)
	}
}

// levelWithAdvisories returns the first TCB level of a TCB Info or QE Identity body that lists
// advisories.
func levelWithAdvisories(t *testing.T, body []byte) []byte {
	t.Helper()
	var v struct{ TCBLevels []json.RawMessage }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	for _, l := range v.TCBLevels {
		if bytes.Contains(l, []byte(`"advisoryIDs"`)) {
			return l
		}
	}
	t.Fatal("no TCB level with advisoryIDs")
	return nil
}

// TestCollateralLevels writes each awkward case and finds the platform's and QE's level the
// way a verifier does: the first level whose SVNs the platform meets.
func TestCollateralLevels(t *testing.T) {
	low := sgx.PCKTCB{PCESVN: 0} // every SVN zero: no lower level can exist
	high := sgx.PCKTCB{PCESVN: 0xfffe}
	for i := range high.CompSVN {
		high.CompSVN[i] = 255
	}
	for _, tc := range []struct {
		name string
		tcb  *sgx.PCKTCB
		qesv uint16
		c    CollateralOptions
	}{
		{name: "defaults"},
		{name: "SWHardeningNeeded", c: CollateralOptions{TCBStatus: verify.SWHardeningNeeded, AdvisoryIDs: []string{"INTEL-SA-00615"}}},
		{name: "ConfigurationNeeded", c: CollateralOptions{TCBStatus: verify.ConfigurationNeeded, AdvisoryIDs: []string{"INTEL-SA-00161", "INTEL-SA-00219"}}},
		{name: "OutOfDate", c: CollateralOptions{TCBStatus: verify.OutOfDate, AdvisoryIDs: []string{"INTEL-SA-00828"}}},
		{name: "Revoked", c: CollateralOptions{TCBStatus: verify.Revoked}},
		{name: "QE OutOfDate", c: CollateralOptions{QETCBStatus: verify.OutOfDate, QEAdvisoryIDs: []string{"INTEL-SA-00615"}}},
		{name: "zero SVNs OutOfDate", tcb: &low, qesv: 1, c: CollateralOptions{TCBStatus: verify.OutOfDate, QETCBStatus: verify.OutOfDate}},
		{name: "maximal SVNs OutOfDate", tcb: &high, qesv: 0xfffe, c: CollateralOptions{TCBStatus: verify.OutOfDate, QETCBStatus: verify.Revoked}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{TCB: tc.tcb}
			if tc.qesv != 0 {
				opts.QESVN = new(tc.qesv)
			}
			p := create(t, opts)
			dir := t.TempDir()
			if err := p.WriteCollateral(dir, tc.c); err != nil {
				t.Fatalf("WriteCollateral: %v", err)
			}
			wantStatus, wantQEStatus := cmp.Or(tc.c.TCBStatus, verify.UpToDate), cmp.Or(tc.c.QETCBStatus, verify.UpToDate)

			var ti testTCBInfo
			body := checkSignedJSON(t, dir, fileTCBInfo, fileTCBInfoChain, "tcbInfo", p.Root())
			if err := json.Unmarshal(body, &ti); err != nil {
				t.Fatal(err)
			}
			match := -1
			for i, l := range ti.TCBLevels {
				if i > 0 && !ti.TCBLevels[i-1].TCBDate.After(l.TCBDate) {
					t.Errorf("level %d tcbDate %v is not older than the level above it", i, l.TCBDate)
				}
				if match < 0 && meets(p.ext.TCB, l) {
					match = i
				}
			}
			if match < 0 {
				t.Fatalf("no TCB level matches the platform's TCB %+v", p.ext.TCB)
			}
			m := ti.TCBLevels[match]
			if m.TCBStatus != string(wantStatus) || !slices.Equal(m.AdvisoryIDs, tc.c.AdvisoryIDs) {
				t.Errorf("matching level %d: status %s advisories %v; want %s %v", match, m.TCBStatus, m.AdvisoryIDs, wantStatus, tc.c.AdvisoryIDs)
			}
			if wantMatch := boolToInt(wantStatus != verify.UpToDate); match != wantMatch || ti.TCBLevels[0].TCBStatus != "UpToDate" {
				t.Errorf("matching level is %d and the top level %s; want level %d and an UpToDate top level", match, ti.TCBLevels[0].TCBStatus, wantMatch)
			}

			var qi testQEIdentity
			body = checkSignedJSON(t, dir, fileQEIdentity, fileQEIdentityChain, "enclaveIdentity", p.Root())
			if err := json.Unmarshal(body, &qi); err != nil {
				t.Fatal(err)
			}
			svn := int(p.QEIdentity().ISVSVN)
			i := slices.IndexFunc(qi.TCBLevels, func(l testTCBLevel) bool { return l.TCB.ISVSVN <= svn })
			if i != boolToInt(wantQEStatus != verify.UpToDate) || qi.TCBLevels[i].TCB.ISVSVN != svn ||
				qi.TCBLevels[i].TCBStatus != string(wantQEStatus) || !slices.Equal(qi.TCBLevels[i].AdvisoryIDs, tc.c.QEAdvisoryIDs) {
				t.Errorf("QE matches level %d of %+v; want the level of ISVSVN %d with status %s and advisories %v",
					i, qi.TCBLevels, svn, wantQEStatus, tc.c.QEAdvisoryIDs)
			}
		})
	}
}

// meets reports whether a platform's PCK TCB is at or above a TCB level.
func meets(tcb sgx.PCKTCB, l testTCBLevel) bool {
	if len(l.TCB.SGXTCBComponents) != 16 {
		return false
	}
	for i, c := range l.TCB.SGXTCBComponents {
		if int(tcb.CompSVN[i]) < c.SVN {
			return false
		}
	}
	return int(tcb.PCESVN) >= l.TCB.PCESVN
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCollateralCRLs(t *testing.T) {
	p := create(t, Options{CAType: sgx.PCKCAPlatform})
	issue := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	next := issue.Add(30 * 24 * time.Hour)
	for _, tc := range []struct {
		name                  string
		c                     CollateralOptions
		pckRevoked, caRevoked bool
	}{
		{name: "nothing revoked", c: CollateralOptions{IssueDate: issue, NextUpdate: next}},
		{name: "PCK revoked", c: CollateralOptions{IssueDate: issue, NextUpdate: next, RevokePCK: true}, pckRevoked: true},
		{name: "PCK CA revoked", c: CollateralOptions{IssueDate: issue, NextUpdate: next, RevokePCKCA: true}, caRevoked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := p.WriteCollateral(dir, tc.c); err != nil {
				t.Fatal(err)
			}
			for _, name := range collateralFiles {
				readTestFile(t, dir, name)
			}
			if !bytes.Contains(readTestFile(t, dir, fileReadme), []byte("NOT SECURE")) {
				t.Errorf("%s does not warn that the platform is not secure", fileReadme)
			}
			issuerChain := readCerts(t, dir, filePCKCRLIssuerChain)
			if len(issuerChain) != 2 || !issuerChain[0].Equal(p.certs.pckCA) || !issuerChain[1].Equal(p.Root()) {
				t.Errorf("%s: want the PCK CA and the root", filePCKCRLIssuerChain)
			}
			for _, c := range []struct {
				file    string
				issuer  *x509.Certificate
				serial  *big.Int
				revoked bool
				decoys  int
			}{
				{fileRootCACRL, p.Root(), p.certs.pckCA.SerialNumber, tc.caRevoked, 0},
				{filePCKCRL, p.certs.pckCA, p.certs.pck.SerialNumber, tc.pckRevoked, decoyRevoked},
			} {
				crl, err := x509.ParseRevocationList(readTestFile(t, dir, c.file))
				if err != nil {
					t.Fatalf("%s: %v", c.file, err)
				}
				if err := crl.CheckSignatureFrom(c.issuer); err != nil {
					t.Errorf("%s: not signed by %q: %v", c.file, c.issuer.Subject.CommonName, err)
				}
				if !bytes.Equal(crl.RawIssuer, c.issuer.RawSubject) || !bytes.Equal(crl.AuthorityKeyId, c.issuer.SubjectKeyId) {
					t.Errorf("%s: issuer or authority key ID is not %q's", c.file, c.issuer.Subject.CommonName)
				}
				if !crl.ThisUpdate.Equal(issue) || !crl.NextUpdate.Equal(next) || crl.Number.Cmp(big.NewInt(1)) != 0 {
					t.Errorf("%s: thisUpdate %v nextUpdate %v number %v; want %v, %v, 1", c.file, crl.ThisUpdate, crl.NextUpdate, crl.Number, issue, next)
				}
				listed := slices.ContainsFunc(crl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
					return e.SerialNumber.Cmp(c.serial) == 0
				})
				if listed != c.revoked || len(crl.RevokedCertificateEntries) != c.decoys+boolToInt(c.revoked) {
					t.Errorf("%s: %d entries, certificate listed %v; want %d entries, listed %v",
						c.file, len(crl.RevokedCertificateEntries), listed, c.decoys+boolToInt(c.revoked), c.revoked)
				}
			}
		})
	}
}

func TestCollateralDates(t *testing.T) {
	p := create(t, Options{})
	dir := t.TempDir()
	issue := time.Date(2025, 5, 1, 0, 0, 0, 999, time.FixedZone("X", 3600))
	next := issue.Add(time.Hour)
	if err := p.WriteCollateral(dir, CollateralOptions{IssueDate: issue, NextUpdate: next, TCBEvaluationDataNumber: 19}); err != nil {
		t.Fatal(err)
	}
	tcb, _ := signedBody(t, readTestFile(t, dir, fileTCBInfo), "tcbInfo")
	qe, _ := signedBody(t, readTestFile(t, dir, fileQEIdentity), "enclaveIdentity")
	for name, body := range map[string][]byte{"tcbInfo": tcb, "enclaveIdentity": qe} {
		for _, want := range []string{`"issueDate":"2025-04-30T23:00:00Z"`, `"nextUpdate":"2025-05-01T00:00:00Z"`, `"tcbEvaluationDataNumber":19`} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("%s does not contain %s", name, want)
			}
		}
	}
}

func TestCollateralOptionsErrors(t *testing.T) {
	p := create(t, Options{})
	now := time.Now()
	for _, tc := range []struct {
		name string
		c    CollateralOptions
		want []string
	}{
		{"unknown status", CollateralOptions{TCBStatus: "Fine"}, []string{`unknown TCB status "Fine"`}},
		{"unknown QE status", CollateralOptions{QETCBStatus: "uptodate"}, []string{`unknown TCB status "uptodate"`}},
		{"next update before issue", CollateralOptions{IssueDate: now, NextUpdate: now.Add(-time.Hour)}, []string{"expected a time after issueDate"}},
		{"empty advisory", CollateralOptions{AdvisoryIDs: []string{"INTEL-SA-00615", ""}}, []string{"advisory ID 1"}},
		{"negative evaluation number", CollateralOptions{TCBEvaluationDataNumber: -1}, []string{"found -1"}},
		{"all at once", CollateralOptions{TCBStatus: "x", TCBEvaluationDataNumber: -2}, []string{`"x"`, "found -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "col")
			err := p.WriteCollateral(dir, tc.c)
			if err == nil {
				t.Fatal("WriteCollateral succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
				t.Errorf("WriteCollateral wrote %v despite the error", m)
			}
		})
	}
}

func TestCollateralNoRoomAboveMaximalTCB(t *testing.T) {
	var top sgx.PCKTCB
	for i := range top.CompSVN {
		top.CompSVN[i] = 255
	}
	top.PCESVN = 0xffff
	p := create(t, Options{TCB: &top, QESVN: new(uint16(0xffff))})
	for _, c := range []CollateralOptions{{TCBStatus: verify.OutOfDate}, {QETCBStatus: verify.OutOfDate}} {
		err := p.WriteCollateral(t.TempDir(), c)
		if err == nil || !strings.Contains(err.Error(), "maximum") {
			t.Errorf("WriteCollateral(%+v) = %v, want an error saying the TCB is at its maximum", c, err)
		}
	}
	if err := p.WriteCollateral(t.TempDir(), CollateralOptions{}); err != nil {
		t.Errorf("WriteCollateral(UpToDate) on a maximal TCB: %v", err)
	}
}
