package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
)

// Client talks to a Coordinator's client API, trusting only a Coordinator certificate issued
// directly by the pinned deployment root. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// Option configures a Client.
type Option func(*options)

type options struct {
	cert    *tls.Certificate
	timeout time.Duration
	now     func() time.Time
}

// WithCertificate authenticates as the manifest user who holds cert. Default: anonymous.
func WithCertificate(cert tls.Certificate) Option { return func(o *options) { o.cert = &cert } }

// WithTimeout bounds every call. Default 30 s.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// New returns a Client for the client API at addr (host:port) that pins root, the deployment
// root certificate that [Verify] returned.
func New(addr string, root *x509.Certificate, opts ...Option) *Client {
	o := options{timeout: 30 * time.Second, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	cfg := pinnedTLS(root, o.now)
	if o.cert != nil {
		cfg.Certificates = []tls.Certificate{*o.cert}
	}
	return &Client{
		base: "https://" + addr,
		hc: &http.Client{
			Timeout:   o.timeout,
			Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
		},
	}
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
			leaf := cs.PeerCertificates[0]
			err := attested.CheckCoordinatorCert(leaf, root, now())
			if err != nil && markedRecovery(leaf) {
				return fmt.Errorf("%w (%w)", ErrRecoveryMode, err)
			}
			return err
		},
	}
}

// ErrRecoveryMode is returned, wrapped, when the pinned root does not verify a Coordinator
// whose certificate is marked as a recovery-mode one: the request is refused all the same
// (the mark is not verified), but the user learns what to run instead.
var ErrRecoveryMode = errors.New("the Coordinator presents a recovery-mode certificate, not one of the pinned deployment root: " +
	"it cannot unseal its state and serves nothing else until recovery key holders recover it; " +
	"`cloister recover status` verifies it by its quote and says why")

func markedRecovery(c *x509.Certificate) bool {
	return slices.ContainsFunc(c.URIs, func(u *url.URL) bool { return u.String() == RecoveryURI })
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return doJSON(ctx, c.hc, c.base, method, path, in, out)
}

// Status returns the Coordinator's state.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, "GET", api.PathStatus, nil, &s)
}

// Manifest returns the current manifest, as it was submitted, and its version.
func (c *Client) Manifest(ctx context.Context) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+api.PathManifest, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, 0, fmt.Errorf("read manifest: %w", err)
	}
	if resp.StatusCode >= 300 {
		return nil, 0, newAPIError(resp, b)
	}
	v, err := strconv.Atoi(resp.Header.Get(api.ManifestVersionHeader))
	if err != nil {
		return nil, 0, fmt.Errorf("manifest answer has no valid %s header", api.ManifestVersionHeader)
	}
	return b, v, nil
}

// SetManifest sets the manifest (raw JSON, sent as it is).
func (c *Client) SetManifest(ctx context.Context, raw []byte) (*api.SetManifestResponse, error) {
	var r api.SetManifestResponse
	return &r, c.do(ctx, "POST", api.PathManifest, raw, &r)
}

// Secrets returns the values of the named secrets.
func (c *Client) Secrets(ctx context.Context, names ...string) (map[string]api.Secret, error) {
	q := url.Values{"name": names}
	var r api.SecretsResponse
	if err := c.do(ctx, "GET", api.PathSecrets+"?"+q.Encode(), nil, &r); err != nil {
		return nil, err
	}
	return r.Secrets, nil
}

// SetSecrets sets values of user-defined secrets.
func (c *Client) SetSecrets(ctx context.Context, values map[string][]byte) error {
	return c.do(ctx, "POST", api.PathSecrets, api.SetSecretsRequest{Secrets: values}, nil)
}

// Certificate returns a deployment certificate, PEM: which is "root", "intermediate" or
// "chain" (intermediate then root).
func (c *Client) Certificate(ctx context.Context, which string) (string, error) {
	paths := map[string]string{"root": api.PathRootCert, "intermediate": api.PathIntermediateCert, "chain": api.PathChain}
	p, ok := paths[which]
	if !ok {
		return "", fmt.Errorf("certificate %q: expected root, intermediate or chain", which)
	}
	var b []byte
	err := c.do(ctx, "GET", p, nil, &b)
	return string(b), err
}
