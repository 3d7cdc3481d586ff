package attested

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
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
	// MaxQuoteAge bounds how old a shared epoch quote ([VerifyEpochQuoteResponse], [DialMesh])
	// may be: its epoch must have started no more than MaxQuoteAge before Now, and no more than
	// one epoch (attest.EpochLength) after it, for clock skew. Default [DefaultMaxQuoteAge].
	// Quotes over the verifier's own nonce ignore it.
	MaxQuoteAge time.Duration
}

// DefaultMaxQuoteAge is the default of Expect.MaxQuoteAge: the Coordinator makes a shared quote
// every minute, so this leaves four minutes for clock skew and a Coordinator late with its quote.
const DefaultMaxQuoteAge = 5 * time.Minute

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
	// Response and Nonce are the raw answer to a quote request over the verifier's nonce, for
	// offline re-verification; nil and zero after a shared epoch quote.
	Response *api.QuoteResponse
	Nonce    [32]byte
	// EpochResponse is the raw answer of a shared epoch quote ([VerifyEpochQuoteResponse]); nil
	// after a quote over the verifier's nonce.
	EpochResponse *api.EpochQuoteResponse
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
	v, err := verifyQuote(resp.Quote, &resp.Collateral, resp.CertificateChain, resp.AuditHead, peer, e,
		func(spki []byte, head *audit.Head) [64]byte {
			return attest.CoordinatorReportData(spki, nonce, head.Seq, head.Hash)
		})
	if err != nil {
		return nil, err
	}
	v.Response, v.Nonce = resp, nonce
	return v, nil
}

// VerifyEpochQuoteResponse verifies the Coordinator's shared quote of an epoch (GET
// api.PathQuoteEpoch) received over a TLS connection whose server presented peer, as
// [VerifyQuoteResponse] verifies a quote over a nonce, except for freshness: instead of the
// verifier's nonce, the report data binds the epoch, which must be recent by e.Now (see
// Expect.MaxQuoteAge). The quote proves that the Coordinator enclave held the key of peer in
// that epoch; that the server of this connection holds it now, the TLS handshake proved. Pass
// peer nil only to verify a stored answer offline.
func VerifyEpochQuoteResponse(resp *api.EpochQuoteResponse, peer *x509.Certificate, e Expect) (*Verified, error) {
	if err := e.checkEpoch(resp.Epoch); err != nil {
		return nil, err
	}
	v, err := verifyQuote(resp.Quote, &resp.Collateral, resp.CertificateChain, resp.AuditHead, peer, e,
		func(spki []byte, head *audit.Head) [64]byte {
			return attest.CoordinatorEpochReportData(spki, resp.Epoch, head.Seq, head.Hash)
		})
	if err != nil {
		return nil, err
	}
	v.EpochResponse = resp
	return v, nil
}

// checkEpoch refuses an epoch that started more than MaxQuoteAge ago or starts more than one
// epoch from now.
func (e *Expect) checkEpoch(epoch uint64) error {
	maxAge := e.MaxQuoteAge
	if maxAge <= 0 {
		maxAge = DefaultMaxQuoteAge
	}
	now := e.now()
	length := uint64(attest.EpochLength / time.Second)
	if epoch > math.MaxInt64/length {
		return fmt.Errorf("coordinator epoch quote: epoch %d is not a time", epoch)
	}
	start := time.Unix(int64(epoch*length), 0)
	if age := now.Sub(start); age > maxAge || age < -attest.EpochLength {
		return fmt.Errorf("coordinator epoch quote: made in the epoch starting %s, which is not within %s before %s (by this clock) nor one epoch after it; expected a recent quote (is a clock wrong?)",
			start.UTC().Format(time.RFC3339), maxAge, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyQuote verifies a Coordinator's quote answer: the certificate chain (its first
// certificate the one peer presented, if peer is not nil), the quote and its collateral against
// e, the audit head's signature by the deployment root, and the report data, which must be
// reportData of the Coordinator certificate's key and the head.
func verifyQuote(quote []byte, wireCol *api.Collateral, chain string, head *audit.Head, peer *x509.Certificate, e Expect,
	reportData func(spki []byte, head *audit.Head) [64]byte) (*Verified, error) {
	certs, err := pki.ParseCertsPEM([]byte(chain))
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
	if err := CheckCoordinatorCert(coord, root, e.now()); err != nil {
		return nil, err
	}
	col, err := attest.DecodeCollateral(wireCol)
	if err != nil {
		return nil, fmt.Errorf("coordinator collateral: %w", err)
	}
	sgxRoot := e.SGXRoot
	if sgxRoot == nil {
		sgxRoot = verify.IntelRoot()
	}
	res, err := verify.New(sgxRoot).Verify(quote, col, e.now())
	if err != nil {
		return nil, fmt.Errorf("coordinator quote: %w", err)
	}
	// The audit head is checked before the quote's report data, which binds it: a head the
	// deployment root did not sign is refused however the quote reads.
	if head == nil {
		return nil, errors.New("coordinator quote: the answer has no audit log head (a Coordinator older than this client?)")
	}
	if err := head.Verify(root); err != nil {
		return nil, fmt.Errorf("coordinator audit head: %w", err)
	}
	rd := reportData(coord.RawSubjectPublicKeyInfo, head)
	if err := e.Check(res, rd[:]); err != nil {
		return nil, fmt.Errorf("coordinator quote: %w", err)
	}
	return &Verified{
		Root:            root,
		Coordinator:     coord,
		Result:          res,
		IdentityChecked: len(e.MREnclave) > 0 || e.MRSigner != nil,
		AuditHead:       head,
	}, nil
}

func (e *Expect) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Check applies e to a verified quote with the report data it must carry (nil for any). The expected
// identities are alternatives: the quote passes if it matches any of them. Without one, the
// quote's own identity stands in, so that every other check still applies.
func (e *Expect) Check(res *verify.Result, reportData []byte) error {
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

// CheckCoordinatorCert checks that coord was issued directly by root, is valid at now and is
// marked as the Coordinator's certificate. Workload certificates come from an intermediate and carry no
// marker, so none can pass for the Coordinator.
func CheckCoordinatorCert(coord, root *x509.Certificate, now time.Time) error {
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

// Verify connects to the Coordinator at addr (host:port of its client or workload API),
// fetches a quote for a fresh nonce on that connection and verifies it against e.
func Verify(ctx context.Context, addr string, e Expect) (*Verified, error) {
	conn, v, err := dialVerified(ctx, addr, e, false)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return v, nil
}

// dialVerified connects to addr and verifies the Coordinator on that connection, which it
// returns open for requests that rely on the verification: with the shared quote of the
// current epoch if shared is set and the Coordinator serves one, else with a quote over a fresh
// nonce.
func dialVerified(ctx context.Context, addr string, e Expect, shared bool) (*oneConn, *Verified, error) {
	f, err := fetchQuote(ctx, addr, shared)
	if err != nil {
		return nil, nil, err
	}
	v, err := f.verify(e)
	if err != nil {
		return nil, nil, err
	}
	return f.conn, v, nil
}

// fetched is a connection to a Coordinator with its quote answer, not verified yet.
type fetched struct {
	conn  *oneConn
	epoch *api.EpochQuoteResponse // the shared quote, or
	resp  *api.QuoteResponse      // the quote over nonce
	nonce [32]byte
}

// fetchQuote connects to addr and fetches the Coordinator's quote on that connection: the shared
// quote of the current epoch if shared is set and the Coordinator serves one, else a quote over
// a fresh nonce.
func fetchQuote(ctx context.Context, addr string, shared bool) (*fetched, error) {
	conn, err := dialUnverified(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	if shared {
		var resp api.EpochQuoteResponse
		err := conn.do(ctx, "GET", api.PathQuoteEpoch, nil, &resp)
		if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.StatusCode == 404 && !conn.broken {
			// A Coordinator older than the shared quote: ask for one over a nonce instead.
		} else if err != nil {
			conn.Close()
			return nil, fmt.Errorf("get coordinator epoch quote: %w", err)
		} else {
			return &fetched{conn: conn, epoch: &resp}, nil
		}
	}
	nonce, err := NewNonce()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var resp api.QuoteResponse
	if err := conn.do(ctx, "GET", api.PathQuote+"?nonce="+hex.EncodeToString(nonce[:]), nil, &resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("get coordinator quote: %w", err)
	}
	return &fetched{conn: conn, resp: &resp, nonce: nonce}, nil
}

// verify verifies the fetched quote against e and the connection's certificate; it closes the
// connection if that fails.
func (f *fetched) verify(e Expect) (*Verified, error) {
	var v *Verified
	var err error
	if f.epoch != nil {
		v, err = VerifyEpochQuoteResponse(f.epoch, f.conn.peer(), e)
	} else {
		v, err = VerifyQuoteResponse(f.resp, f.conn.peer(), f.nonce, e)
	}
	if err != nil {
		f.conn.Close()
		return nil, err
	}
	return v, nil
}
