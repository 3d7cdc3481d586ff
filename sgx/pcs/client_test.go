package pcs_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/pcs"
)

func newClient(t testing.TB, cfg pcs.ClientConfig) *pcs.Client {
	t.Helper()
	c, err := pcs.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientConfig(t *testing.T) {
	for _, tc := range []struct {
		url     string
		version int
		want    int
		wantErr string
	}{
		{url: pcs.IntelPCSURL, want: 4},
		{url: "https://pccs.example:8081/sgx/certification/v3/", want: 3},
		{url: "http://127.0.0.1:8081/sgx/certification/v4", version: 4, want: 4},
		{url: "https://pccs.example/collateral", version: 3, want: 3},
		{url: "https://pccs.example/collateral", wantErr: `not given, and the base URL ends in "collateral"`},
		{url: "https://pccs.example/sgx/certification/v3", version: 4, wantErr: `4 given, but the base URL ends in "v3"`},
		{url: "https://pccs.example/sgx/certification/v4", version: 2, wantErr: "expected 3 or 4, found 2"},
		{url: "ftp://pccs.example/v4", wantErr: "expected an absolute http or https URL"},
		{url: "/sgx/certification/v4", wantErr: "expected an absolute http or https URL"},
		{url: "https://pccs.example/v4?x=1", wantErr: "expected no query or fragment"},
	} {
		c, err := pcs.NewClient(pcs.ClientConfig{BaseURL: tc.url, APIVersion: tc.version})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewClient(%q, %d) error = %v; want one containing %q", tc.url, tc.version, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewClient(%q, %d): %v", tc.url, tc.version, err)
			continue
		}
		if c.APIVersion() != tc.want {
			t.Errorf("NewClient(%q, %d).APIVersion() = %d; want %d", tc.url, tc.version, c.APIVersion(), tc.want)
		}
	}
	if _, err := pcs.NewClient(pcs.ClientConfig{BaseURL: "https://pccs.example/v4", RootCACRLURL: "::"}); err == nil {
		t.Error("NewClient accepted root CA CRL URL \"::\"")
	}
	c := newClient(t, pcs.ClientConfig{BaseURL: "https://user:secret@pccs.example/sgx/certification/v4"})
	if strings.Contains(c.BaseURL(), "secret") {
		t.Errorf("BaseURL() = %q; want the password redacted", c.BaseURL())
	}
}

// TestFetchBothAPIVersions fetches a simulated set from a v3 (PCCS-shaped: PEM PCK CRL, hex
// root CRL, "+" for spaces in headers) and a v4 (DER PCK CRL, TCB-Info-Issuer-Chain) service.
func TestFetchBothAPIVersions(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			f := newFakePCS(t, version, p.CollateralDir())
			c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
			col, err := c.Fetch(t.Context(), p.FMSPC(), sgx.PCKCAProcessor)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			for name, got := range map[string][]byte{
				"tcb_info.json":    col.TCBInfo.Raw(),
				"qe_identity.json": col.QEIdentity.Raw(),
				"pck_crl.der":      col.PCKCRL.Raw,
				"root_ca_crl.der":  col.RootCACRL.Raw,
			} {
				if !bytes.Equal(got, f.file(name)) {
					t.Errorf("%s: fetched bytes differ from the served file", name)
				}
			}
			for name, chain := range map[string]int{"TCB Info": len(col.TCBInfoIssuerChain),
				"QE Identity": len(col.QEIdentityIssuerChain), "PCK CRL": len(col.PCKCRLIssuerChain)} {
				if chain != 2 {
					t.Errorf("%s issuer chain has %d certificates; want 2", name, chain)
				}
			}
			for _, ep := range []string{"tcb", "qe/identity", "pckcrl", "rootcacrl"} {
				if n := f.count(ep); n != 1 {
					t.Errorf("%s requested %d times; want 1", ep, n)
				}
			}
		})
	}
}

func TestFetchNotFound(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	_, err := c.Fetch(t.Context(), [6]byte{1, 2, 3, 4, 5, 6}, sgx.PCKCAProcessor)
	if !errors.Is(err, pcs.ErrNotFound) {
		t.Fatalf("Fetch for an unknown FMSPC: %v; want ErrNotFound", err)
	}
	if he, ok := errors.AsType[*pcs.HTTPError](err); !ok || he.StatusCode != http.StatusNotFound {
		t.Errorf("Fetch for an unknown FMSPC: %v; want an *HTTPError with status 404", err)
	}
	// A service without CRLs still gives TCB Info and QE Identity.
	f.remove("pck_crl.der")
	f.remove("root_ca_crl.der")
	col, err := c.Fetch(t.Context(), p.FMSPC(), sgx.PCKCAProcessor)
	if err != nil {
		t.Fatalf("Fetch without CRLs on the service: %v", err)
	}
	if col.PCKCRL != nil || col.RootCACRL != nil || col.TCBInfo == nil || col.QEIdentity == nil {
		t.Errorf("Fetch without CRLs on the service = %+v; want TCB Info and QE Identity only", col)
	}
}

func TestHTTPErrorIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Request-ID", strings.Repeat("r", 1000))
		http.Error(w, strings.Repeat("x", 100_000), http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newClient(t, pcs.ClientConfig{BaseURL: srv.URL + "/sgx/certification/v4"})
	_, _, err := c.QEIdentity(t.Context())
	he, ok := errors.AsType[*pcs.HTTPError](err)
	if !ok {
		t.Fatalf("QEIdentity: %v; want an *HTTPError", err)
	}
	if he.StatusCode != http.StatusServiceUnavailable || len(he.Body) != 256 || len(he.RequestID) != 128 {
		t.Errorf("HTTPError status %d, body %d bytes, request ID %d bytes; want 503, 256, 128", he.StatusCode, len(he.Body), len(he.RequestID))
	}
	if errors.Is(err, pcs.ErrNotFound) {
		t.Error("a 503 matches ErrNotFound")
	}
	if !strings.Contains(err.Error(), "HTTP 503") || len(err.Error()) > 1024 {
		t.Errorf("error message %q: want the status and a bounded excerpt", err)
	}
}

func TestOversizedResponses(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	chain := url.PathEscape(string(f.file("tcb_info_issuer_chain.pem")))
	big := strings.Repeat("A", pcs.MaxHeaderSize+1)
	for _, tc := range []struct {
		name   string
		client *http.Client // nil: the default client
		serve  func(w http.ResponseWriter)
		want   string
	}{
		{"body with length", nil, func(w http.ResponseWriter) {
			w.Header().Set("TCB-Info-Issuer-Chain", chain)
			w.Header().Set("Content-Length", fmt.Sprint(pcs.MaxBodySize+1))
			w.Write(make([]byte, pcs.MaxBodySize+1))
		}, "larger than the 1048576"},
		{"chunked body", nil, func(w http.ResponseWriter) {
			w.Header().Set("TCB-Info-Issuer-Chain", chain)
			for range 17 {
				w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
			}
		}, "larger than the 1048576"},
		{"header, own client", &http.Client{Transport: &http.Transport{}}, func(w http.ResponseWriter) {
			w.Header().Set("TCB-Info-Issuer-Chain", big)
			w.Write(f.file("tcb_info.json"))
		}, "65537 bytes is larger than the 65536 allowed"},
		{"header block, default client", nil, func(w http.ResponseWriter) {
			for i := range 5 {
				w.Header().Set(fmt.Sprintf("X-Filler-%d", i), big[:60<<10])
			}
			w.Header().Set("TCB-Info-Issuer-Chain", chain)
			w.Write(f.file("tcb_info.json"))
		}, "response headers exceeded 262144 bytes"},
		{"two chain headers", nil, func(w http.ResponseWriter) {
			w.Header().Add("TCB-Info-Issuer-Chain", chain)
			w.Header().Add("TCB-Info-Issuer-Chain", chain)
			w.Write(f.file("tcb_info.json"))
		}, "2 TCB-Info-Issuer-Chain headers; expected one"},
		{"no chain header", nil, func(w http.ResponseWriter) {
			w.Write(f.file("tcb_info.json"))
		}, "no TCB-Info-Issuer-Chain header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/tcb") {
					return false
				}
				tc.serve(w)
				return true
			})
			c := newClient(t, pcs.ClientConfig{BaseURL: f.url(), HTTPClient: tc.client})
			_, _, err := c.TCBInfo(t.Context(), p.FMSPC())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("TCBInfo error = %v; want one containing %q", err, tc.want)
			}
		})
	}
}

// TestV4AcceptsEitherTCBInfoHeader checks that a v4 service may send the v3 header name.
func TestV4AcceptsEitherTCBInfoHeader(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/tcb") {
			return false
		}
		w.Header().Set("SGX-TCB-Info-Issuer-Chain", url.PathEscape(string(f.file("tcb_info_issuer_chain.pem"))))
		w.Write(f.file("tcb_info.json"))
		return true
	})
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	if _, chain, err := c.TCBInfo(t.Context(), p.FMSPC()); err != nil || len(chain) != 2 {
		t.Errorf("TCBInfo with SGX-TCB-Info-Issuer-Chain from a v4 service: %d certificates, %v", len(chain), err)
	}
}

// TestTCBInfoForAnotherFMSPC checks that the client refuses a TCB Info for another FMSPC.
func TestTCBInfoForAnotherFMSPC(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/tcb") {
			return false
		}
		w.Header().Set("TCB-Info-Issuer-Chain", url.PathEscape(string(f.file("tcb_info_issuer_chain.pem"))))
		w.Write(f.file("tcb_info.json"))
		return true
	})
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	other := [6]byte{0x00, 0x90, 0x6E, 0xD5, 0, 0}
	if _, _, err := c.TCBInfo(t.Context(), other); err == nil || !strings.Contains(err.Error(), "the document is for FMSPC 00AA55000000") {
		t.Errorf("TCBInfo(%X) answered with %X's: %v; want an error", other, p.FMSPC(), err)
	}
}

func TestRootCACRLEncodings(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 3, p.CollateralDir())
	der := f.file("root_ca_crl.der")
	for name, body := range map[string][]byte{
		"DER":           der,
		"PEM":           pemBlock("X509 CRL", der),
		"hex":           []byte(hex.EncodeToString(der)),
		"upper hex, LF": []byte(strings.ToUpper(hex.EncodeToString(der)) + "\n"),
		"hex of PEM":    []byte(hex.EncodeToString(pemBlock("X509 CRL", der))),
	} {
		f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
			w.Write(body)
			return true
		})
		c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
		crl, err := c.RootCACRL(t.Context())
		if err != nil || !bytes.Equal(crl.Raw, der) {
			t.Errorf("RootCACRL from a %s body: %v; want the DER CRL", name, err)
		}
	}
	f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		w.Write([]byte("not a CRL"))
		return true
	})
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	if _, err := c.RootCACRL(t.Context()); err == nil || !strings.Contains(err.Error(), "expected a DER, PEM or hex-encoded CRL") {
		t.Errorf("RootCACRL of %q: %v; want an error", "not a CRL", err)
	}
}

// TestAPIKey checks that the key goes to the service only: not to the root CA CRL host, not
// through a redirect to another host.
func TestAPIKey(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	keys := make(chan string, 10)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys <- "other:" + r.Header.Get(pcs.APIKeyHeader)
		w.Write(f.file("root_ca_crl.der"))
	}))
	defer other.Close()
	f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		keys <- "service:" + r.Header.Get(pcs.APIKeyHeader)
		if strings.HasSuffix(r.URL.Path, "/qe/identity") {
			http.Redirect(w, r, other.URL+"/qe", http.StatusFound)
			return true
		}
		return false
	})
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url(), APIKey: "k3y", RootCACRLURL: other.URL + "/root.der"})
	if _, _, err := c.TCBInfo(t.Context(), p.FMSPC()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RootCACRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := <-keys+" "+<-keys, "service:k3y other:"; got != want {
		t.Errorf("keys received %q; want %q", got, want)
	}
	_, _, err := c.QEIdentity(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refusing to send the API key") {
		t.Errorf("QEIdentity redirected to another host: %v; want a refusal", err)
	}
	if got := <-keys; got != "service:k3y" {
		t.Errorf("redirect: first request %q", got)
	}
	select {
	case got := <-keys:
		t.Errorf("the redirect was followed: %q", got)
	default:
	}
}

func TestFetchCancelled(t *testing.T) {
	p := newPlatform(t, sgx.PCKCAProcessor)
	f := newFakePCS(t, 4, p.CollateralDir())
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Fetch(ctx, p.FMSPC(), sgx.PCKCAProcessor); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: %v; want context.Canceled", err)
	}
	if _, _, err := c.PCKCRL(t.Context(), "other"); err == nil {
		t.Error(`PCKCRL("other") succeeded`)
	}
}
