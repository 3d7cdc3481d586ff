package pcs

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Defaults and bounds of a [Client].
const (
	// IntelPCSURL is the base URL of Intel's PCS, API version 4.
	IntelPCSURL = "https://api.trustedservices.intel.com/sgx/certification/v4"
	// IntelRootCACRLURL is where Intel publishes the SGX Root CA CRL (DER). Intel's PCS has
	// no root CA CRL endpoint; a PCCS has one ({base}/rootcacrl).
	IntelRootCACRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
	// DefaultHTTPTimeout is the timeout of the HTTP client used when none is configured.
	DefaultHTTPTimeout = 30 * time.Second
	// MaxBodySize bounds every response body, in bytes.
	MaxBodySize = 1 << 20
	// MaxHeaderSize bounds each issuer-chain header value, in bytes. The default HTTP client
	// also bounds the whole response header block to 4*MaxHeaderSize.
	MaxHeaderSize = 64 << 10
)

// APIKeyHeader is the header that carries a PCS subscription key.
const APIKeyHeader = "Ocp-Apim-Subscription-Key"

const intelPCSHost = "api.trustedservices.intel.com"

// ClientConfig configures a [Client]. Only BaseURL is required.
type ClientConfig struct {
	// BaseURL is the service's certification API, such as [IntelPCSURL] or
	// "https://pccs.example:8081/sgx/certification/v3". It must be http or https, without
	// query or fragment; a trailing slash is ignored.
	BaseURL string
	// APIVersion is 3 or 4. Zero infers it from the last path element of BaseURL ("v3" or
	// "v4"); a value that contradicts it is an error.
	APIVersion int
	// APIKey, when set, is sent as [APIKeyHeader] to BaseURL's host only (never to the root
	// CA CRL URL's host nor through a redirect to another host).
	APIKey string
	// RootCACRLURL is where the root CA CRL is fetched. Empty means [IntelRootCACRLURL] when
	// BaseURL is Intel's PCS (api.trustedservices.intel.com), BaseURL + "/rootcacrl" (a
	// PCCS) otherwise.
	RootCACRLURL string
	// HTTPClient makes the requests. Nil means a client with [DefaultHTTPTimeout] and a
	// response header limit of 4*[MaxHeaderSize]. The Client uses a copy, whose redirect
	// policy also refuses to carry the API key to another host.
	HTTPClient *http.Client
}

// Client fetches collateral from an Intel PCS or a PCCS. It parses and bounds responses but
// verifies no signature; see [Provider]. It is safe for concurrent use.
type Client struct {
	base       string // without trailing slash
	baseHost   string
	redacted   string
	version    int
	apiKey     string
	rootCRLURL string
	hc         *http.Client
}

// NewClient validates cfg and returns a Client. All configuration problems are reported at
// once.
func NewClient(cfg ClientConfig) (*Client, error) {
	var errs []error
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("base URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		errs = append(errs, fmt.Errorf("base URL %q: expected an absolute http or https URL", u.Redacted()))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("base URL %q: expected no query or fragment", u.Redacted()))
	}
	c := &Client{base: base, apiKey: cfg.APIKey, rootCRLURL: cfg.RootCACRLURL}
	if err == nil {
		c.baseHost, c.redacted = u.Host, u.Redacted()
		c.version, err = apiVersion(cfg.APIVersion, path.Base(u.Path))
		if err != nil {
			errs = append(errs, err)
		}
		if c.rootCRLURL == "" {
			c.rootCRLURL = base + "/rootcacrl"
			if u.Hostname() == intelPCSHost {
				c.rootCRLURL = IntelRootCACRLURL
			}
		}
	}
	if cfg.RootCACRLURL != "" {
		if r, err := url.Parse(cfg.RootCACRLURL); err != nil || r.Scheme != "http" && r.Scheme != "https" || r.Host == "" {
			errs = append(errs, fmt.Errorf("root CA CRL URL %q: expected an absolute http or https URL", redact(cfg.RootCACRLURL)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("PCS client configuration: %w", err)
	}
	c.hc = c.httpClient(cfg.HTTPClient)
	return c, nil
}

// apiVersion returns the configured version, or the one named by the last path element.
func apiVersion(configured int, last string) (int, error) {
	inferred := 0
	switch last {
	case "v3":
		inferred = 3
	case "v4":
		inferred = 4
	}
	switch {
	case configured != 0 && configured != 3 && configured != 4:
		return 0, fmt.Errorf("API version: expected 3 or 4, found %d", configured)
	case configured == 0 && inferred == 0:
		return 0, fmt.Errorf("API version: not given, and the base URL ends in %q, not \"v3\" or \"v4\"", last)
	case configured != 0 && inferred != 0 && configured != inferred:
		return 0, fmt.Errorf("API version: %d given, but the base URL ends in %q", configured, last)
	case configured != 0:
		return configured, nil
	}
	return inferred, nil
}

// httpClient returns a copy of hc (or the default client) whose redirect policy never sends
// the API key to another host.
func (c *Client) httpClient(hc *http.Client) *http.Client {
	var own http.Client
	if hc != nil {
		own = *hc
	} else {
		own.Timeout = DefaultHTTPTimeout
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			t = t.Clone()
			t.MaxResponseHeaderBytes = 4 * MaxHeaderSize
			own.Transport = t
		}
	}
	next := own.CheckRedirect
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Header.Get(APIKeyHeader) != "" && (req.URL.Host != c.baseHost || req.URL.Scheme != via[0].URL.Scheme) {
			return fmt.Errorf("redirect to %s: refusing to send the API key to a host other than %s", req.URL.Redacted(), c.baseHost)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &own
}

// APIVersion returns the API version the Client speaks: 3 or 4.
func (c *Client) APIVersion() int { return c.version }

// BaseURL returns the base URL, with any password redacted.
func (c *Client) BaseURL() string { return c.redacted }
