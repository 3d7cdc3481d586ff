package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/internal/ratelog"
	"github.com/cloister-dev/cloister/store"
)

// KeySource is the state whose data key a Server gives (store.DB).
type KeySource interface {
	// WithDataKey calls fn with the data key, which fn must not keep.
	WithDataKey(fn func(key []byte) error) error
	// Version is the newest state version seen.
	Version() store.Version
}

// maxConcurrent bounds the exchanges served at once: each costs a quote and a verification.
const maxConcurrent = 4

// Refusals (failed handshakes included) are logged at most refusalRate a second, in bursts of
// refusalBurst: anyone who reaches the peer port can make it refuse. A line says how many
// were left out before it. Keys given are always logged: only this Coordinator can get one.
const (
	refusalRate  = 5
	refusalBurst = 20
)

// Server gives the data key to replicas that prove they are this Coordinator.
type Server struct {
	att  *Attester
	keys KeySource
	log  *slog.Logger
	tls  *tls.Config
	sem  chan struct{}
	// refusals bounds the log lines of refused exchanges.
	refusals ratelog.Limiter
}

// NewServer returns a Server giving the key of keys. log nil means discard.
func NewServer(att *Attester, keys KeySource, log *slog.Logger) (*Server, error) {
	if att == nil || att.Issuer == nil || att.Verifier == nil || keys == nil {
		return nil, errors.New("peer: a server needs an attester (issuer, verifier) and a key source")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert, err := ephemeralCert(att.Simulation)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		// The requester's certificate is ephemeral and self-signed: it proves nothing, but
		// its handshake key goes into the exporter its quote binds.
		ClientAuth: tls.RequireAnyClientCert,
	}
	return &Server{att: att, keys: keys, log: log, tls: cfg, sem: make(chan struct{}, maxConcurrent),
		refusals: ratelog.Limiter{Rate: refusalRate, Burst: refusalBurst}}, nil
}

// Serve answers key requests on ln until ctx ends; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("peer: accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			conn.Close()
			return nil
		}
		wg.Go(func() {
			defer func() { <-s.sem }()
			s.handle(ctx, conn)
		})
	}
}

// handle serves one exchange and logs its outcome (never the key).
func (s *Server) handle(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	raw.SetDeadline(time.Now().Add(ExchangeTimeout))
	from := raw.RemoteAddr().String()
	conn := tls.Server(raw, s.tls)
	if err := conn.HandshakeContext(ctx); err != nil {
		s.logRefusal("peer key request: TLS handshake failed", from, err)
		return
	}
	id, err := s.exchange(ctx, conn)
	if err != nil {
		s.logRefusal("peer key request refused", from, err)
		// The requester learns why: nothing in it is secret, and it saves the operator a hunt.
		writeFrame(conn, frameRefused, []byte(err.Error()))
		return
	}
	s.log.Warn("gave the data key to a peer that proved it is this Coordinator", "peer", from, "peer_isvsvn", id.SVN)
}

// logRefusal logs a refused exchange unless refusals come faster than the log may take.
func (s *Server) logRefusal(msg, from string, err error) {
	ok, skipped := s.refusals.Allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"peer", from, "error", err.Error()}
	if skipped > 0 {
		attrs = append(attrs, "refusals_not_logged", skipped)
	}
	s.log.Warn(msg, attrs...)
}

func (s *Server) exchange(ctx context.Context, conn *tls.Conn) (Identity, error) {
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		return Identity{}, fmt.Errorf("peer: protocol %q, expected %q", cs.NegotiatedProtocol, ALPN)
	}
	exp, err := exporter(cs)
	if err != nil {
		return Identity{}, err
	}
	_, q, err := readFrame(conn, frameRequest)
	if err != nil {
		return Identity{}, err
	}
	// The key never flows to an older version: the requester's ISVSVN must be at least ours.
	id, err := s.att.check(ctx, q, roleRequest, exp, s.att.Self.SVN, nil)
	if err != nil {
		return id, err
	}
	mine, err := s.att.quote(ctx, roleGive, exp)
	if err != nil {
		return id, err
	}
	var payload []byte
	err = s.keys.WithDataKey(func(key []byte) error {
		payload = (&keyAnswer{quote: mine, key: key, seen: s.keys.Version()}).encode()
		return nil
	})
	if err != nil {
		return id, err
	}
	defer clear(payload)
	if err := writeFrame(conn, frameKey, payload); err != nil {
		return id, fmt.Errorf("peer: sending the key: %w", err)
	}
	return id, nil
}

// ephemeralCert is a fresh self-signed P-256 certificate: the channel's keys, nothing more.
func ephemeralCert(simulation bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := "Cloister Coordinator peer key exchange"
	if simulation {
		cn = "SIMULATION (not secure) " + cn
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("peer: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
