package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/attest"
)

// maxResponse bounds every answer the SDK reads (a manifest is at most 4 MiB, a set of
// secrets a few MiB).
const maxResponse = 16 << 20

// oneConn is an HTTP/1.1 client bound to a single TLS connection. Quotes are bound to one
// connection (its server key, or its exporter), so the requests that depend on them must not
// wander to another connection from a pool.
type oneConn struct {
	conn *tls.Conn
	hc   *http.Client
	host string
}

// ErrConnClosed is wrapped by the errors of requests on an attested connection (a
// [MeshSession]'s, or the one [Verify] uses) that the connection closed or broke under: the
// server closed it, or it failed before an answer arrived. The connection cannot be replaced
// without attesting the Coordinator again, since what was verified, and what an activation's
// quote binds, is that very connection. The request may or may not have reached the
// Coordinator. Callers recover by dialing and verifying again ([DialMesh]) and retrying with a
// fresh quote; the launcher does so.
var ErrConnClosed = errors.New("the attested connection to the Coordinator was closed; it cannot be replaced without attesting again")

// dialUnverified opens a TLS connection whose server is checked later, by its quote.
func dialUnverified(ctx context.Context, addr string, verifyConn func(tls.ConnectionState) error) (*oneConn, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the server proves itself by a quote over its key, checked by the caller
		VerifyConnection:   verifyConn,
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	conn := c.(*tls.Conn)
	var once sync.Once
	tr := &http.Transport{
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			var out net.Conn
			once.Do(func() { out = conn })
			if out == nil {
				return nil, ErrConnClosed
			}
			return out, nil
		},
		MaxConnsPerHost: 1,
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	return &oneConn{conn: conn, hc: &http.Client{Transport: tr}, host: addr}, nil
}

func (c *oneConn) peer() *x509.Certificate {
	st := c.conn.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0]
}

func (c *oneConn) exporter() ([32]byte, error) {
	st := c.conn.ConnectionState()
	return attest.Exporter(&st)
}

func (c *oneConn) Close() error {
	c.hc.CloseIdleConnections()
	return c.conn.Close()
}

func (c *oneConn) do(ctx context.Context, method, path string, in, out any) error {
	err := doJSON(ctx, c.hc, "https://"+c.host, method, path, in, out)
	// A transport failure (not an answer, nor the caller's cancellation) means the single
	// connection is gone: the transport drops a connection a request failed on.
	if _, transport := errors.AsType[*transportError](err); transport && ctx.Err() == nil && !errors.Is(err, ErrConnClosed) {
		err = fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return err
}

// doJSON sends in as JSON (raw bytes when in is []byte) and decodes the answer into out
// ([]byte out receives the raw body). Error answers become *APIError.
func doJSON(ctx context.Context, hc *http.Client, base, method, path string, in, out any) error {
	var body io.Reader
	contentType := ""
	switch v := in.(type) {
	case nil:
	case []byte:
		body, contentType = bytes.NewReader(v), "application/json"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return &transportError{fmt.Errorf("read answer to %s %s: %w", method, path, err)}
	}
	if len(b) > maxResponse {
		return fmt.Errorf("answer to %s %s is larger than %d bytes", method, path, maxResponse)
	}
	if resp.StatusCode >= 300 {
		return newAPIError(resp, b)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("answer to %s %s: %w", method, path, err)
		}
		return nil
	}
}

// transportError is a request that failed for want of a working connection, not because of the
// answer: the request could not be sent, or the answer not read in full.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
