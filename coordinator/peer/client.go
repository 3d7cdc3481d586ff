package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cloister-dev/cloister/store"
)

// ErrRefused is matched by Fetch's error when the giver refused the request.
var ErrRefused = errors.New("peer: the peer refused to give the key")

// Fetch asks the replica at addr for the data key. It proves this Coordinator to it, and
// returns the key only if the giver's quote verifies, is bound to this connection, and names
// the same signer and product (at any ISVSVN; see the package comment). The caller still checks
// that the key opens the state.
func Fetch(ctx context.Context, addr string, att *Attester) (key []byte, seen store.Version, err error) {
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	cert, err := ephemeralCert(att.Simulation)
	if err != nil {
		return nil, store.Version{}, err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		// Trust comes from the giver's quote over this connection's exporter, not from a
		// certificate chain: its certificate is ephemeral and self-signed.
		InsecureSkipVerify: true,
	}}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("peer %s: %w", addr, err)
	}
	defer raw.Close()
	conn := raw.(*tls.Conn)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		return nil, store.Version{}, fmt.Errorf("peer %s: protocol %q, expected %q (not a Cloister Coordinator's peer endpoint?)", addr, cs.NegotiatedProtocol, ALPN)
	}
	exp, err := exporter(cs)
	if err != nil {
		return nil, store.Version{}, err
	}
	q, err := att.quote(ctx, roleRequest, exp)
	if err != nil {
		return nil, store.Version{}, err
	}
	if err := writeFrame(conn, frameRequest, q); err != nil {
		return nil, store.Version{}, fmt.Errorf("peer %s: sending the request: %w", addr, err)
	}
	typ, p, err := readFrame(conn, frameKey, frameRefused)
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("peer %s: %w", addr, err)
	}
	if typ == frameRefused {
		return nil, store.Version{}, fmt.Errorf("%w: peer %s: %s", ErrRefused, addr, refusal(p))
	}
	defer clear(p)
	a, err := parseKeyAnswer(p)
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("peer %s: %w", addr, err)
	}
	if _, err := att.check(ctx, a.quote, roleGive, exp, 0, giverTCBStatuses); err != nil {
		return nil, store.Version{}, fmt.Errorf("peer %s: refused its key: %w", addr, err)
	}
	return bytes.Clone(a.key), a.seen, nil
}
