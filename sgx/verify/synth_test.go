package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// synth is a synthetic SGX platform signed by a test root: it makes quotes and collateral in
// Intel's formats so that tests can reach paths the real vectors do not (revocation, TCB levels
// not supported, QE identity mismatches). Fields may be changed before calling its methods.
type synth struct {
	t                              testing.TB
	now                            time.Time
	rootKey, caKey, pckKey, tcbKey *ecdsa.PrivateKey
	akKey                          *ecdsa.PrivateKey
	root, ca, pck, tcb             *x509.Certificate
	ext                            sgx.PCKExtensions
	tcbLevels                      []map[string]any // TCB Info levels
	qeLevels                       []map[string]any
	qeReport                       sgx.ReportBody
	qeMRSigner                     [32]byte
	rootRevoked, pckRevoked        []*big.Int
	tcbFMSPC                       string
}

func newSynth(t testing.TB) *synth {
	t.Helper()
	s := &synth{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, k := range []**ecdsa.PrivateKey{&s.rootKey, &s.caKey, &s.pckKey, &s.tcbKey, &s.akKey} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		*k = key
	}
	s.ext = sgx.PCKExtensions{FMSPC: [6]byte{0, 0x90, 0x6e, 0xa1, 0, 0}, SGXType: sgx.SGXTypeStandard}
	s.ext.TCB.CompSVN = [16]byte{5, 5, 2, 2, 1, 1}
	s.ext.TCB.PCESVN = 11
	s.tcbFMSPC = "00906EA10000"
	s.tcbLevels = []map[string]any{
		level([16]int{6, 6, 2, 2, 1, 1}, 11, "UpToDate"),
		level([16]int{5, 5, 2, 2, 1, 1}, 11, "SWHardeningNeeded", "INTEL-SA-00615"),
		level([16]int{4, 4, 2, 2, 1, 1}, 10, "OutOfDate", "INTEL-SA-00615", "INTEL-SA-00001"),
	}
	s.qeMRSigner = sha256.Sum256([]byte("test QE signer"))
	s.qeLevels = []map[string]any{qeLevel(8, "UpToDate"), qeLevel(6, "OutOfDate", "INTEL-SA-00615")}
	s.qeReport = sgx.ReportBody{MRSigner: s.qeMRSigner, ISVProdID: 1, ISVSVN: 8,
		Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit | sgx.AttrProvisionKey, XFRM: 0xe7}}
	s.issue()
	return s
}

func level(svns [16]int, pcesvn int, status string, advisories ...string) map[string]any {
	comps := make([]map[string]any, 16)
	for i, svn := range svns {
		comps[i] = map[string]any{"svn": svn}
	}
	l := map[string]any{"tcb": map[string]any{"sgxtcbcomponents": comps, "pcesvn": pcesvn},
		"tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": status}
	if advisories != nil {
		l["advisoryIDs"] = advisories
	}
	return l
}

func qeLevel(isvsvn int, status string, advisories ...string) map[string]any {
	l := map[string]any{"tcb": map[string]any{"isvsvn": isvsvn}, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": status}
	if advisories != nil {
		l["advisoryIDs"] = advisories
	}
	return l
}

// issue (re)creates the certificates from the keys and s.ext.
func (s *synth) issue() {
	s.root = s.cert("Test SGX Root CA", &s.rootKey.PublicKey, nil, s.rootKey, true, 1, nil)
	s.ca = s.cert("Test SGX PCK Processor CA", &s.caKey.PublicKey, s.root, s.rootKey, true, 0, nil)
	der, err := s.ext.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	s.pck = s.cert("Test SGX PCK Certificate", &s.pckKey.PublicKey, s.ca, s.caKey, false, -1,
		[]pkix.Extension{{Id: sgx.OIDSGXExtensions, Value: der}})
	s.tcb = s.cert("Test SGX TCB Signing", &s.tcbKey.PublicKey, s.root, s.rootKey, false, -1, nil)
}

var serial int64 = 100

func (s *synth) cert(cn string, pub *ecdsa.PublicKey, parent *x509.Certificate, signer *ecdsa.PrivateKey, ca bool, pathLen int, ext []pkix.Extension) *x509.Certificate {
	s.t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             s.now.AddDate(-1, 0, 0),
		NotAfter:              s.now.AddDate(5, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		ExtraExtensions:       ext,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = pathLen, pathLen == 0
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func signRS(t testing.TB, key *ecdsa.PrivateKey, msg []byte) [64]byte {
	t.Helper()
	d := sha256.Sum256(msg)
	r, sv, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return sig
}

func pemChain(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// quote returns a quote of an enclave with the given report body. Each edit changes the quote
// before the QE report data and the signatures are computed.
func (s *synth) quote(body sgx.ReportBody, edits ...func(*sgx.Quote)) []byte {
	s.t.Helper()
	q := &sgx.Quote{
		Header:       sgx.Header{Version: 3, AttKeyType: 2, QESVN: s.qeReport.ISVSVN, PCESVN: s.ext.TCB.PCESVN, QEVendorID: sgx.IntelQEVendorID},
		Body:         body,
		QEAuthData:   []byte("auth data"),
		CertDataType: sgx.CertDataTypePCKChain,
		CertData:     append(pemChain(s.pck, s.ca, s.root), 0),
	}
	ak, err := s.akKey.PublicKey.Bytes()
	if err != nil {
		s.t.Fatal(err)
	}
	copy(q.AttestationKey[:], ak[1:])
	q.QEReport = s.qeReport
	for _, edit := range edits {
		edit(q)
	}
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	copy(q.QEReport.ReportData[:], h.Sum(nil))
	q.QEReportSignature = signRS(s.t, s.pckKey, q.RawQEReport())
	q.Signature = signRS(s.t, s.akKey, q.SignedBytes())
	b, err := q.MarshalBinary()
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// signedJSON returns {"<key>":<v>,"signature":"<hex>"} signed by key.
func signedJSON(t testing.TB, key string, v any, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sig := signRS(t, signer, body)
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%s"}`, key, body, hex.EncodeToString(sig[:]))
}

func (s *synth) tcbInfoJSON(signer *ecdsa.PrivateKey) []byte {
	return signedJSON(s.t, "tcbInfo", map[string]any{
		"id": "SGX", "version": 3, "issueDate": s.now.AddDate(0, 0, -1).Format(time.RFC3339),
		"nextUpdate": s.now.AddDate(0, 0, 29).Format(time.RFC3339), "fmspc": s.tcbFMSPC, "pceId": "0000",
		"tcbType": 0, "tcbEvaluationDataNumber": 17, "tcbLevels": s.tcbLevels,
	}, signer)
}

func (s *synth) qeIdentityJSON(signer *ecdsa.PrivateKey) []byte {
	return signedJSON(s.t, "enclaveIdentity", map[string]any{
		"id": "QE", "version": 2, "issueDate": s.now.AddDate(0, 0, -1).Format(time.RFC3339),
		"nextUpdate": s.now.AddDate(0, 0, 29).Format(time.RFC3339), "tcbEvaluationDataNumber": 16,
		"miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": hex.EncodeToString(s.qeMRSigner[:]), "isvprodid": 1, "tcbLevels": s.qeLevels,
	}, signer)
}

func (s *synth) crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked []*big.Int) *x509.RevocationList {
	s.t.Helper()
	var entries []x509.RevocationListEntry
	for _, n := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: s.now.AddDate(0, -1, 0)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: s.now.AddDate(0, 0, -1), NextUpdate: s.now.AddDate(0, 0, 29),
		RevokedCertificateEntries: entries,
	}, issuer, key)
	if err != nil {
		s.t.Fatal(err)
	}
	crl, err := verify.ParseCRL(der)
	if err != nil {
		s.t.Fatal(err)
	}
	return crl
}

// collateral returns complete collateral for the platform.
func (s *synth) collateral() *verify.Collateral {
	s.t.Helper()
	ti, err := verify.ParseTCBInfo(s.tcbInfoJSON(s.tcbKey))
	if err != nil {
		s.t.Fatal(err)
	}
	qi, err := verify.ParseQEIdentity(s.qeIdentityJSON(s.tcbKey))
	if err != nil {
		s.t.Fatal(err)
	}
	return &verify.Collateral{
		TCBInfo: ti, TCBInfoIssuerChain: []*x509.Certificate{s.tcb, s.root},
		QEIdentity: qi, QEIdentityIssuerChain: []*x509.Certificate{s.tcb, s.root},
		RootCACRL: s.crl(s.root, s.rootKey, s.rootRevoked),
		PCKCRL:    s.crl(s.ca, s.caKey, s.pckRevoked),
	}
}

func (s *synth) verifier() *verify.Verifier { return verify.New(s.root) }
