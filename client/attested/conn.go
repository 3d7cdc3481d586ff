package attested

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cloister-dev/cloister/attest"
)

// maxResponse bounds every answer the SDK reads (a manifest is at most 4 MiB, a set of
// secrets a few MiB).
const maxResponse = 16 << 20

// oneConn is an HTTP/1.1 client bound to a single TLS connection. Quotes are bound to one
// connection (its server key, or its exporter), so the requests that depend on them must not
// wander to another connection from a pool. It writes its requests and reads the answers
// itself (readResponse), one at a time, rather than through net/http: the launcher makes two
// requests per start and would link all of net/http for nothing else.
type oneConn struct {
	conn *tls.Conn
	br   *bufio.Reader
	host string
	// broken is set once the connection can carry no more requests: a request failed on it,
	// its answer was left unread, or the server said it closes it.
	broken bool
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
	return &oneConn{conn: conn, br: bufio.NewReader(conn), host: addr}, nil
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
	c.broken = true
	return c.conn.Close()
}

func (c *oneConn) do(ctx context.Context, method, path string, in, out any) error {
	err := c.roundTrip(ctx, method, path, in, out)
	// A transport failure (not an answer, nor the caller's cancellation) means the single
	// connection is gone: no other request is sent on a connection a request failed on.
	if _, transport := errors.AsType[*transportError](err); transport && ctx.Err() == nil && !errors.Is(err, ErrConnClosed) {
		err = fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return err
}

// roundTrip sends one request on the connection and reads its answer in full.
// ctx bounds both: its end breaks the connection.
func (c *oneConn) roundTrip(ctx context.Context, method, path string, in, out any) error {
	if c.broken {
		return &transportError{ErrConnClosed}
	}
	body, err := requestBody(in)
	if err != nil {
		return err
	}
	var req bytes.Buffer
	req.Grow(256 + len(body))
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cloister-client\r\n", method, path, c.host)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)

	// Until the answer is read, the connection is in the middle of a request: any failure,
	// or the end of ctx, leaves it unusable.
	c.broken = true
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.exchange(req.Bytes())
	if !stop() {
		err = fmt.Errorf("%s %s: %w", method, path, ctx.Err())
	}
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("answer to %s %s: %w", method, path, err)
	}
	if err != nil {
		return &transportError{err}
	}
	c.conn.SetDeadline(time.Time{})
	c.broken = resp.close
	return decodeAnswer(resp, method, path, out)
}

// exchange writes req and reads the answer, its body up to maxResponse bytes.
func (c *oneConn) exchange(req []byte) (*response, error) {
	if _, err := c.conn.Write(req); err != nil {
		return nil, err
	}
	return readResponse(c.br, maxResponse)
}

// requestBody is in as JSON (raw bytes when in is []byte), or nil for no body.
func requestBody(in any) ([]byte, error) {
	switch v := in.(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	default:
		return json.Marshal(v)
	}
}

// decodeAnswer decodes the answer resp into out ([]byte out receives the raw body). Error
// answers become *APIError.
func decodeAnswer(resp *response, method, path string, out any) error {
	if resp.status >= 300 {
		return NewAPIError(resp.status, resp.requestID, resp.body)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = resp.body
		return nil
	default:
		if err := json.Unmarshal(resp.body, out); err != nil {
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
