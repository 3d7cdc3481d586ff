package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// CoordinatorURI marks the Coordinator's TLS certificate (see package coordinator/core).
const CoordinatorURI = "urn:cloister:coordinator"

// Expect is what a Coordinator must prove about itself.
type Expect struct {
	// SGXRoot is the root whose key the quote's PCK chain must end at. Default: Intel's SGX
	// Root CA. A simulated platform's root makes verification succeed for simulated (insecure)
	// Coordinators.
	SGXRoot *x509.Certificate
	// MREnclave (any of them), or MRSigner with ISVProdID and MinISVSVN, is the expected
	// Coordinator enclave; with both, either identity passes. With neither, any genuine enclave
	// passes and Verified.IdentityChecked is false: the caller must compare the measurement
	// itself.
	MREnclave [][32]byte
	MRSigner  *[32]byte
	ISVProdID uint16
	MinISVSVN uint16
	// AllowDebug accepts a debug Coordinator enclave. Default false.
	AllowDebug bool
	// TCBStatuses are the accepted TCB statuses. Default verify.DefaultTCBStatuses.
	TCBStatuses []verify.TCBStatus
	// AllowExpiredCollateral accepts collateral past its next update. Default false.
	AllowExpiredCollateral bool
	// AllowMissingCRLs accepts collateral without revocation lists. Default false: the
	// collateral comes from the Coordinator being verified, which must not be able to hide that
	// its platform was revoked by leaving the CRLs out.
	AllowMissingCRLs bool
	// Now is the verification clock. Default time.Now.
	Now func() time.Time
}

// ExpectSimulated returns what a simulated Coordinator proves: a quote from the simulated SGX
// platform whose root is sgxRoot, signed as attest.SimCoordinatorSigner with product ID
// attest.CoordinatorProdID, as `cloister coordinator --simulation` quotes. It is INSECURE: anyone
// holding the simulated platform's keys can forge such quotes. For tests, demos and simulation
// only; production expects Intel's root (the default) and the real Coordinator's identity.
func ExpectSimulated(sgxRoot *x509.Certificate) Expect {
	signer := attest.SimCoordinatorSigner // a copy: the caller may change the Expect
	return Expect{SGXRoot: sgxRoot, MRSigner: &signer, ISVProdID: attest.CoordinatorProdID}
}

// Verified is a Coordinator that passed verification.
type Verified struct {
	// Root is the deployment's root CA, to pin for later calls.
	Root *x509.Certificate
	// Coordinator is the Coordinator's TLS certificate, whose key its quote binds.
	Coordinator *x509.Certificate
	// Result is the verified quote.
	Result *verify.Result
	// IdentityChecked says whether Expect named an identity that the quote matched.
	IdentityChecked bool
	// AuditHead is the head of the Coordinator's audit log that the quote binds, its
	// signature checked with Root. Keep it: a later export of the log must extend it
	// (audit.VerifyOptions.Seen).
	AuditHead *audit.Head
	// Response and Nonce are the raw answer, for offline re-verification.
	Response *api.QuoteResponse
	Nonce    [32]byte
}

// NewNonce returns a random 32-byte nonce.
func NewNonce() ([32]byte, error) {
	var n [32]byte
	_, err := rand.Read(n[:])
	return n, err
}

// VerifyQuoteResponse verifies a Coordinator's answer to a quote request made with nonce over a
// TLS connection whose server presented peer: the certificate chain, the quote and its
// collateral against e, the audit head's signature by the deployment root, and the report data
// that binds the Coordinator's TLS key, the nonce and that head. Pass peer nil to verify a stored answer offline
// (then only the quote's binding to its own certificate chain is checked).
func VerifyQuoteResponse(resp *api.QuoteResponse, peer *x509.Certificate, nonce [32]byte, e Expect) (*Verified, error) {
	certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err != nil {
		return nil, fmt.Errorf("coordinator certificate chain: %w", err)
	}
	if len(certs) != 2 {
		return nil, fmt.Errorf("coordinator certificate chain: expected 2 certificates (Coordinator, root), found %d", len(certs))
	}
	coord, root := certs[0], certs[1]
	if peer != nil && !bytes.Equal(peer.Raw, coord.Raw) {
		return nil, errors.New("the quote is about another certificate than the one this connection presented (a relayed quote?)")
	}
	if err := checkCoordinatorCert(coord, root, e.now()); err != nil {
		return nil, err
	}
	col, err := attest.DecodeCollateral(&resp.Collateral)
	if err != nil {
		return nil, fmt.Errorf("coordinator collateral: %w", err)
	}
	sgxRoot := e.SGXRoot
	if sgxRoot == nil {
		sgxRoot = verify.IntelRoot()
	}
	res, err := verify.New(sgxRoot).Verify(resp.Quote, col, e.now())
	if err != nil {
		return nil, fmt.Errorf("coordinator quote: %w", err)
	}
	// The audit head is checked before the quote's report data, which binds it: a head the
	// deployment root did not sign is refused however the quote reads.
	head := resp.AuditHead
	if head == nil {
		return nil, errors.New("coordinator quote: the answer has no audit log head (a Coordinator older than this client?)")
	}
	if err := head.Verify(root); err != nil {
		return nil, fmt.Errorf("coordinator audit head: %w", err)
	}
	rd := attest.CoordinatorReportData(coord.RawSubjectPublicKeyInfo, nonce, head.Seq, head.Hash)
	if err := e.check(res, rd[:]); err != nil {
		return nil, fmt.Errorf("coordinator quote: %w", err)
	}
	return &Verified{
		Root:            root,
		Coordinator:     coord,
		Result:          res,
		IdentityChecked: len(e.MREnclave) > 0 || e.MRSigner != nil,
		AuditHead:       head,
		Response:        resp,
		Nonce:           nonce,
	}, nil
}

func (e *Expect) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// check applies e to a verified quote with the report data it must carry. The expected
// identities are alternatives: the quote passes if it matches any of them. Without one, the
// quote's own identity stands in, so that every other check still applies.
func (e *Expect) check(res *verify.Result, reportData []byte) error {
	base := verify.Policy{
		AllowDebug:             e.AllowDebug,
		TCBStatuses:            e.TCBStatuses,
		AllowExpiredCollateral: e.AllowExpiredCollateral,
		RequireCRLs:            !e.AllowMissingCRLs,
		ReportData:             reportData,
	}
	var alternatives []verify.Policy
	if len(e.MREnclave) > 0 {
		p := base
		p.MREnclave = e.MREnclave
		alternatives = append(alternatives, p)
	}
	if e.MRSigner != nil {
		p := base
		p.MRSigner, p.ISVProdID, p.MinISVSVN = *e.MRSigner, e.ISVProdID, e.MinISVSVN
		alternatives = append(alternatives, p)
	}
	if len(alternatives) == 0 {
		p := base
		p.MREnclave = [][32]byte{res.Enclave.MREnclave}
		alternatives = append(alternatives, p)
	}
	var errs []error
	for _, p := range alternatives {
		err := p.Check(res)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkCoordinatorCert checks that coord was issued directly by root and is marked as the
// Coordinator's certificate. Workload certificates come from an intermediate and carry no
// marker, so none can pass for the Coordinator.
func checkCoordinatorCert(coord, root *x509.Certificate, now time.Time) error {
	if err := root.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("deployment root certificate is not self-signed: %w", err)
	}
	if err := coord.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("coordinator certificate was not issued by the deployment root: %w", err)
	}
	if now.Before(coord.NotBefore) || now.After(coord.NotAfter) {
		return fmt.Errorf("coordinator certificate is valid %s to %s, not at %s", coord.NotBefore.Format(time.RFC3339), coord.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if !slices.ContainsFunc(coord.URIs, func(u *url.URL) bool { return u.String() == CoordinatorURI }) {
		return fmt.Errorf("server certificate %q is not marked %s; expected the Coordinator's certificate", coord.Subject.CommonName, CoordinatorURI)
	}
	return nil
}

// pinnedTLS returns a TLS configuration that accepts only a Coordinator certificate issued
// directly by root.
func pinnedTLS(root *x509.Certificate, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection: host names do not matter, the root does
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("coordinator presented no certificate")
			}
			return checkCoordinatorCert(cs.PeerCertificates[0], root, now())
		},
	}
}

// Verify connects to the Coordinator at addr (host:port of its client or workload API),
// fetches a quote for a fresh nonce on that connection and verifies it against e.
func Verify(ctx context.Context, addr string, e Expect) (*Verified, error) {
	conn, v, err := dialVerified(ctx, addr, e)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return v, nil
}

// dialVerified connects to addr and verifies the Coordinator on that connection, which it
// returns open for requests that rely on the verification.
func dialVerified(ctx context.Context, addr string, e Expect) (*oneConn, *Verified, error) {
	nonce, err := NewNonce()
	if err != nil {
		return nil, nil, err
	}
	conn, err := dialUnverified(ctx, addr, nil)
	if err != nil {
		return nil, nil, err
	}
	var resp api.QuoteResponse
	if err := conn.do(ctx, "GET", api.PathQuote+"?nonce="+hex.EncodeToString(nonce[:]), nil, &resp); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("get coordinator quote: %w", err)
	}
	v, err := VerifyQuoteResponse(&resp, conn.peer(), nonce, e)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, v, nil
}
