package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// quoteFixture is a Coordinator's answer to a quote request, made by hand on a simulated
// platform: a deployment root, a Coordinator certificate it issued, and a quote binding that
// certificate's key and a nonce.
type quoteFixture struct {
	platform *sim.Platform
	root     *pki.CA
	coord    *x509.Certificate
	nonce    [32]byte
	mr       [32]byte
}

func newQuoteFixture(t testing.TB) *quoteFixture {
	t.Helper()
	p, err := sim.Create(filepath.Join(t.TempDir(), "platform"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &quoteFixture{platform: p, root: root, nonce: [32]byte{1, 2, 3}, mr: sha256.Sum256([]byte("coordinator"))}
	f.coord = f.issue(t, root, true)
	return f
}

// issue makes a Coordinator certificate under ca, with or without the Coordinator marker.
func (f *quoteFixture) issue(t testing.TB, ca *pki.CA, marked bool) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pki.LeafConfig{CommonName: "Cloister Coordinator", Validity: time.Hour}
	if marked {
		u, _ := url.Parse(CoordinatorURI)
		cfg.URIs = []*url.URL{u}
	}
	c, err := ca.IssueLeaf(&key.PublicKey, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// head returns an audit head of entry seq signed by key.
func head(t testing.TB, seq uint64, key crypto.Signer) *audit.Head {
	t.Helper()
	h := &audit.Head{Seq: seq, Hash: audit.Hash{byte(seq)}, Time: time.Now().UTC()}
	if err := h.Sign(key); err != nil {
		t.Fatal(err)
	}
	return h
}

// response returns the answer for coord, quoting over its key, nonce and an audit head signed
// by the fixture's root on platform p.
func (f *quoteFixture) response(t testing.TB, p *sim.Platform, coord, root *x509.Certificate, nonce [32]byte) *api.QuoteResponse {
	t.Helper()
	return f.responseWith(t, p, coord, root, nonce, head(t, 7, f.root.Key))
}

func (f *quoteFixture) responseWith(t testing.TB, p *sim.Platform, coord, root *x509.Certificate, nonce [32]byte, h *audit.Head) *api.QuoteResponse {
	t.Helper()
	iss := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(f.mr, attest.SimCoordinatorSigner, attest.CoordinatorProdID, 1)}
	q, err := iss.Quote(t.Context(), attest.CoordinatorReportData(coord.RawSubjectPublicKeyInfo, nonce, h.Seq, h.Hash))
	if err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	return &api.QuoteResponse{Quote: q, Collateral: attest.EncodeCollateral(col), CertificateChain: string(pki.EncodeCertPEM(coord, root)), Simulation: true, AuditHead: h}
}

func TestVerifyQuoteResponse(t *testing.T) {
	f := newQuoteFixture(t)
	expect := ExpectSimulated(f.platform.Root())
	good := f.response(t, f.platform, f.coord, f.root.Cert, f.nonce)

	v, err := VerifyQuoteResponse(good, f.coord, f.nonce, expect)
	if err != nil {
		t.Fatalf("VerifyQuoteResponse: %v", err)
	}
	if !v.Root.Equal(f.root.Cert) || !v.Coordinator.Equal(f.coord) || !v.IdentityChecked || v.Result.Enclave.MREnclave != f.mr || v.AuditHead != good.AuditHead {
		t.Errorf("Verified = root %v coordinator %v identity checked %v", v.Root.Subject, v.Coordinator.Subject, v.IdentityChecked)
	}
	if v, err := VerifyQuoteResponse(good, nil, f.nonce, Expect{SGXRoot: f.platform.Root()}); err != nil || v.IdentityChecked {
		t.Errorf("without an expected identity: %v, identity checked %v; want success that says it was not checked", err, v != nil && v.IdentityChecked)
	}

	otherRoot, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := sim.Create(filepath.Join(t.TempDir(), "elsewhere"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	unmarked := f.issue(t, f.root, false)
	foreign := f.issue(t, otherRoot, true)
	wrongMR := sha256.Sum256([]byte("other"))
	withHead := func(h *audit.Head) *api.QuoteResponse {
		r := *good
		r.AuditHead = h
		return &r
	}
	otherSeq := head(t, 8, f.root.Key)
	otherSeq.Hash = good.AuditHead.Hash
	otherSeq.Sign(f.root.Key)
	for _, tc := range []struct {
		name   string
		resp   *api.QuoteResponse
		peer   *x509.Certificate
		nonce  [32]byte
		expect Expect
		want   string
	}{
		{"relayed: the connection presented another certificate", good, f.issue(t, f.root, true), f.nonce, expect,
			"the quote is about another certificate than the one this connection presented (a relayed quote?)"},
		{"another nonce", good, f.coord, [32]byte{9}, expect, "report data"},
		{"one certificate only", &api.QuoteResponse{Quote: good.Quote, Collateral: good.Collateral, CertificateChain: string(pki.EncodeCertPEM(f.coord))}, f.coord, f.nonce, expect,
			"coordinator certificate chain: expected 2 certificates (Coordinator, root), found 1"},
		{"no certificates", &api.QuoteResponse{Quote: good.Quote}, nil, f.nonce, expect, "coordinator certificate chain: "},
		{"certificate without the Coordinator marker", f.response(t, f.platform, unmarked, f.root.Cert, f.nonce), unmarked, f.nonce, expect,
			`server certificate "Cloister Coordinator" is not marked urn:cloister:coordinator; expected the Coordinator's certificate`},
		{"certificate from another root", &api.QuoteResponse{Quote: good.Quote, Collateral: good.Collateral, CertificateChain: string(pki.EncodeCertPEM(foreign, f.root.Cert))}, foreign, f.nonce, expect,
			"coordinator certificate was not issued by the deployment root"},
		{"quote from another platform", f.response(t, elsewhere, f.coord, f.root.Cert, f.nonce), f.coord, f.nonce, expect,
			"chain does not end in the pinned root key"},
		{"Intel's root", good, f.coord, f.nonce, Expect{MRSigner: &attest.SimCoordinatorSigner, ISVProdID: 1}, "chain does not end in the pinned root key"},
		{"another MRENCLAVE expected", good, f.coord, f.nonce, Expect{SGXRoot: f.platform.Root(), MREnclave: [][32]byte{wrongMR}}, "mrenclave "},
		{"a newer Coordinator expected", good, f.coord, f.nonce, Expect{SGXRoot: f.platform.Root(), MRSigner: &attest.SimCoordinatorSigner, ISVProdID: 1, MinISVSVN: 2},
			"isvsvn 1 not accepted; expected at least 2"},
		{"certificate expired", good, f.coord, f.nonce, Expect{SGXRoot: f.platform.Root(), Now: func() time.Time { return time.Now().Add(2 * time.Hour) }},
			"coordinator certificate is valid "},
		{"no audit head", withHead(nil), f.coord, f.nonce, expect, "the answer has no audit log head"},
		{"audit head signed by another root", withHead(head(t, 7, otherRoot.Key)), f.coord, f.nonce, expect, "coordinator audit head: audit: head 7"},
		{"audit head other than the one quoted", withHead(head(t, 9, f.root.Key)), f.coord, f.nonce, expect, "report data"},
		{"audit head of another entry number", withHead(otherSeq), f.coord, f.nonce, expect, "report data"},
		{"collateral tampered", &api.QuoteResponse{Quote: good.Quote, CertificateChain: good.CertificateChain, Collateral: api.Collateral{TCBInfo: []byte("{}")}}, f.coord, f.nonce, expect,
			"coordinator collateral: tcb_info: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyQuoteResponse(tc.resp, tc.peer, tc.nonce, tc.expect)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyQuoteResponse = %v, %v; want an error with %q", v, err, tc.want)
			}
		})
	}
}

func TestPinnedTLSAcceptsOnlyTheCoordinator(t *testing.T) {
	f := newQuoteFixture(t)
	otherRoot, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := f.root.NewIntermediate(pki.IntermediateConfig{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pinnedTLS(f.root.Cert, time.Now)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		want  string
	}{
		{"the Coordinator", []*x509.Certificate{f.coord}, ""},
		{"no certificate", nil, "coordinator presented no certificate"},
		{"another deployment's Coordinator", []*x509.Certificate{f.issue(t, otherRoot, true)}, "was not issued by the deployment root"},
		{"a workload certificate, even marked", []*x509.Certificate{f.issue(t, inter, true), inter.Cert}, "was not issued by the deployment root"},
		{"unmarked certificate of the root", []*x509.Certificate{f.issue(t, f.root, false)}, "is not marked urn:cloister:coordinator"},
		{"a recovery-mode Coordinator", []*x509.Certificate{recoveryCert(t)}, "`cloister recover status` verifies it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cfg.VerifyConnection(tlsState(tc.chain))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("VerifyConnection = %v, want %q", err, tc.want)
			}
		})
	}
}

// recoveryCert is a self-signed certificate marked as a recovery-mode Coordinator's.
func recoveryCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(RecoveryURI)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "recovery"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
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

func tlsState(chain []*x509.Certificate) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: chain}
}

// TestVerifyIdentityAlternativesAndCRLs checks that expected identities are alternatives, and
// that a Coordinator cannot hide a revoked platform by leaving out the CRLs it serves.
func TestVerifyIdentityAlternativesAndCRLs(t *testing.T) {
	f := newQuoteFixture(t)
	resp := f.response(t, f.platform, f.coord, f.root.Cert, f.nonce)
	signer := attest.SimCoordinatorSigner
	wrongMR := [32]byte{0xee}
	either := Expect{SGXRoot: f.platform.Root(), MREnclave: [][32]byte{wrongMR}, MRSigner: &signer, ISVProdID: attest.CoordinatorProdID}
	if _, err := VerifyQuoteResponse(resp, f.coord, f.nonce, either); err != nil {
		t.Fatalf("MRSIGNER matches, MRENCLAVE does not: %v; want accepted (alternatives)", err)
	}
	neither := either
	wrongSigner := [32]byte{0xdd}
	neither.MRSigner = &wrongSigner
	if _, err := VerifyQuoteResponse(resp, f.coord, f.nonce, neither); err == nil || !strings.Contains(err.Error(), "mrenclave") || !strings.Contains(err.Error(), "mrsigner") {
		t.Fatalf("neither identity matches: err = %v; want a rejection naming both", err)
	}

	stripped := *resp
	stripped.Collateral.PCKCRL, stripped.Collateral.RootCACRL, stripped.Collateral.PCKCRLIssuerChain = nil, nil, ""
	if _, err := VerifyQuoteResponse(&stripped, f.coord, f.nonce, either); err == nil || !strings.Contains(err.Error(), "revocation lists") {
		t.Fatalf("collateral without CRLs: err = %v; want a rejection", err)
	}
	lenient := either
	lenient.AllowMissingCRLs = true
	if _, err := VerifyQuoteResponse(&stripped, f.coord, f.nonce, lenient); err != nil {
		t.Fatalf("collateral without CRLs, allowed: %v", err)
	}
}
