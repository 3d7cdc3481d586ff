package pcs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// Issuer-chain headers. API v4 names the TCB Info one without the SGX- prefix; some v4
// services send both.
const (
	headerTCBInfoChainV3    = "SGX-TCB-Info-Issuer-Chain"
	headerTCBInfoChainV4    = "TCB-Info-Issuer-Chain"
	headerQEIdentityChain   = "SGX-Enclave-Identity-Issuer-Chain"
	headerPCKCRLIssuerChain = "SGX-PCK-CRL-Issuer-Chain"
)

// TCBInfo fetches the TCB Info for FMSPC fmspc (GET {base}/tcb?fmspc=<hex>) and its issuer
// chain (header TCB-Info-Issuer-Chain in API v4, SGX-TCB-Info-Issuer-Chain in v3; either is
// accepted, the version's own first). It checks that the TCB Info names fmspc but verifies no
// signature. An FMSPC the service does not know is an error wrapping [ErrNotFound].
func (c *Client) TCBInfo(ctx context.Context, fmspc [6]byte) (*verify.TCBInfo, []*x509.Certificate, error) {
	names := []string{headerTCBInfoChainV4, headerTCBInfoChainV3}
	if c.version == 3 {
		names[0], names[1] = names[1], names[0]
	}
	body, chain, err := c.getWithChain(ctx, c.base+"/tcb?"+url.Values{"fmspc": {fmt.Sprintf("%X", fmspc)}}.Encode(), names...)
	if err != nil {
		return nil, nil, fmt.Errorf("TCB Info for FMSPC %X: %w", fmspc, err)
	}
	t, err := verify.ParseTCBInfo(body)
	if err != nil {
		return nil, nil, fmt.Errorf("TCB Info for FMSPC %X from %s: %w", fmspc, c.redacted, err)
	}
	if t.FMSPC != fmspc {
		return nil, nil, fmt.Errorf("TCB Info for FMSPC %X from %s: the document is for FMSPC %X", fmspc, c.redacted, t.FMSPC)
	}
	return t, chain, nil
}

// QEIdentity fetches the Quoting Enclave identity (GET {base}/qe/identity) and its issuer
// chain (header SGX-Enclave-Identity-Issuer-Chain). It verifies no signature.
func (c *Client) QEIdentity(ctx context.Context) (*verify.QEIdentity, []*x509.Certificate, error) {
	body, chain, err := c.getWithChain(ctx, c.base+"/qe/identity", headerQEIdentityChain)
	if err != nil {
		return nil, nil, fmt.Errorf("QE Identity: %w", err)
	}
	q, err := verify.ParseQEIdentity(body)
	if err != nil {
		return nil, nil, fmt.Errorf("QE Identity from %s: %w", c.redacted, err)
	}
	return q, chain, nil
}

// PCKCRL fetches the CRL of the PCK CA of type ca (GET {base}/pckcrl?ca=processor|platform,
// with &encoding=der in API v4) and its issuer chain (header SGX-PCK-CRL-Issuer-Chain). The
// body may be DER, PEM or hex. It verifies no signature.
func (c *Client) PCKCRL(ctx context.Context, ca sgx.PCKCAType) (*x509.RevocationList, []*x509.Certificate, error) {
	if ca != sgx.PCKCAProcessor && ca != sgx.PCKCAPlatform {
		return nil, nil, fmt.Errorf("PCK CRL: CA type %q; expected %q or %q", ca, sgx.PCKCAProcessor, sgx.PCKCAPlatform)
	}
	q := url.Values{"ca": {string(ca)}}
	if c.version == 4 {
		q.Set("encoding", "der")
	}
	body, chain, err := c.getWithChain(ctx, c.base+"/pckcrl?"+q.Encode(), headerPCKCRLIssuerChain)
	if err != nil {
		return nil, nil, fmt.Errorf("PCK CRL (%s CA): %w", ca, err)
	}
	crl, err := decodeCRL(body)
	if err != nil {
		return nil, nil, fmt.Errorf("PCK CRL (%s CA) from %s: %w", ca, c.redacted, err)
	}
	return crl, chain, nil
}

// RootCACRL fetches the Intel SGX Root CA CRL from the configured root CA CRL URL (see
// [ClientConfig.RootCACRLURL]). The body may be DER, PEM or hex (a PCCS answers hex). It
// verifies no signature.
func (c *Client) RootCACRL(ctx context.Context) (*x509.RevocationList, error) {
	body, _, err := c.get(ctx, c.rootCRLURL)
	if err != nil {
		return nil, fmt.Errorf("root CA CRL: %w", err)
	}
	crl, err := decodeCRL(body)
	if err != nil {
		return nil, fmt.Errorf("root CA CRL from %s: %w", redact(c.rootCRLURL), err)
	}
	return crl, nil
}

// Fetch fetches a whole collateral set for a platform with FMSPC fmspc and a PCK certificate
// issued by the PCK CA of type ca, with concurrent requests. TCB Info and QE Identity are
// required; a CRL the service does not have (404) is left nil. Fetch verifies no signature:
// use a [Provider] for verified collateral.
func (c *Client) Fetch(ctx context.Context, fmspc [6]byte, ca sgx.PCKCAType) (*verify.Collateral, error) {
	col := &verify.Collateral{}
	var errTCB, errQE, errPCK, errRoot error
	var wg sync.WaitGroup
	wg.Go(func() { col.TCBInfo, col.TCBInfoIssuerChain, errTCB = c.TCBInfo(ctx, fmspc) })
	wg.Go(func() { col.QEIdentity, col.QEIdentityIssuerChain, errQE = c.QEIdentity(ctx) })
	wg.Go(func() { col.PCKCRL, col.PCKCRLIssuerChain, errPCK = c.PCKCRL(ctx, ca) })
	wg.Go(func() { col.RootCACRL, errRoot = c.RootCACRL(ctx) })
	wg.Wait()
	if errors.Is(errPCK, ErrNotFound) {
		errPCK = nil
	}
	if errors.Is(errRoot, ErrNotFound) {
		errRoot = nil
	}
	if err := errors.Join(errTCB, errQE, errPCK, errRoot); err != nil {
		return nil, err
	}
	return col, nil
}

// getWithChain GETs u and decodes the issuer chain from the first of the header names present,
// which is required.
func (c *Client) getWithChain(ctx context.Context, u string, names ...string) ([]byte, []*x509.Certificate, error) {
	body, h, err := c.get(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		values := h.Values(name)
		switch len(values) {
		case 0:
			continue
		case 1:
		default:
			return nil, nil, fmt.Errorf("GET %s: %d %s headers; expected one", redact(u), len(values), name)
		}
		chain, err := decodeIssuerChain(values[0])
		if err != nil {
			return nil, nil, fmt.Errorf("GET %s: header %s: %w", redact(u), name, err)
		}
		return body, chain, nil
	}
	return nil, nil, fmt.Errorf("GET %s: no %s header; expected the issuer certificate chain", redact(u), names[0])
}

// get GETs u and returns the body of a 200 response (at most MaxBodySize bytes) and the
// headers. Any other status is an *HTTPError.
func (c *Client) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	req.Header.Set("User-Agent", "cloister-sgx-pcs")
	if c.apiKey != "" && req.URL.Host == c.baseHost {
		req.Header.Set(APIKeyHeader, c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorExcerpt))
		id := resp.Header.Get("Request-ID")
		return nil, nil, &HTTPError{URL: redact(u), StatusCode: resp.StatusCode, Body: string(excerpt), RequestID: id[:min(len(id), maxRequestID)]}
	}
	if resp.ContentLength > MaxBodySize {
		return nil, nil, fmt.Errorf("GET %s: response body of %d bytes is larger than the %d allowed", redact(u), resp.ContentLength, MaxBodySize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading the response body: %w", redact(u), err)
	}
	if len(body) > MaxBodySize {
		return nil, nil, fmt.Errorf("GET %s: response body is larger than the %d bytes allowed", redact(u), MaxBodySize)
	}
	return body, resp.Header, nil
}

// redact returns u with any password replaced, for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}
