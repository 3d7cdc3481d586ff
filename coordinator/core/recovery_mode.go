package core

import (
	"context"
	"crypto/ecdh"
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
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/recovery"
)

// RecoveryURI marks the TLS certificate of a Coordinator in recovery mode. It is self-signed
// (the deployment root is sealed away): clients trust it only through the recovery quote that
// binds its key.
const RecoveryURI = "urn:cloister:coordinator-recovery"

// RecoveryConfig is what a Coordinator in recovery mode is made of.
type RecoveryConfig struct {
	// Record is the recovery record found beside the sealed key (store.ReadRecovery); nil if
	// there is none, and then recovery is impossible.
	Record []byte
	// Reason says why the state cannot be opened, for the status answer and the log.
	Reason string
	// Issuer and Verifier produce and check the Coordinator's own quotes.
	Issuer   attest.Issuer
	Verifier EvidenceVerifier
	// Simulation marks status answers as insecure.
	Simulation  bool
	DNSNames    []string
	IPAddresses []net.IP
	// Complete is called, under the recovery's lock, with the reconstructed data key (checked
	// against the record's MAC) and a report of the recovery. It must prove the key opens the
	// state, record the recovery and reseal the key; until it returns nil the recovery is not
	// done, and on error the shares received are dropped.
	Complete func(ctx context.Context, key []byte, r RecoveryReport) error
}

// RecoveryReport describes a completed recovery for the audit log.
type RecoveryReport struct {
	Generation string
	Threshold  int
	Holders    []string // whose shares rebuilt the key, in the order they came
	Reason     string
	Started    time.Time
	// Record is the split whose shares rebuilt the key. It came from the plaintext record
	// beside the sealed key, which the host can write: Complete must check it against the
	// recovered state (core.WithRecoveredRecord) before it trusts the recovery.
	Record *recovery.Record
}

// Recovery is a Coordinator in recovery mode: it cannot unseal its state, proves what it is
// with quotes over a recovery session key, and collects holders' shares until it has enough.
// It is safe for concurrent use.
type Recovery struct {
	cfg     RecoveryConfig
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	rec     *recovery.Record // nil: recovery impossible
	recErr  error            // why the record does not parse

	session    string
	sessionKey *ecdh.PrivateKey
	tlsCert    *tls.Certificate
	quotes     quoteCache
	quoteSlots chan struct{}

	mu       sync.Mutex     // guards shares, order, done
	shares   map[int][]byte // accepted shares' y-values by index
	order    []string       // holders in the order their shares came
	done     chan struct{}  // closed when recovery completed
	finished bool
}

// NewRecovery starts recovery mode: a recovery session (X25519 key, never stored) and an
// ephemeral self-signed TLS certificate. A missing or unreadable record is not an error: the
// Coordinator then says recovery is impossible and refuses every share.
func NewRecovery(cfg RecoveryConfig, opts ...Option) (*Recovery, error) {
	if cfg.Issuer == nil || cfg.Verifier == nil || cfg.Complete == nil {
		return nil, errors.New("core: RecoveryConfig needs Issuer, Verifier and Complete")
	}
	tmp := &Core{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(tmp)
	}
	r := &Recovery{cfg: cfg, log: tmp.log, now: tmp.now, shares: map[int][]byte{}, done: make(chan struct{}), quoteSlots: make(chan struct{}, maxConcurrentQuotes)}
	r.started = r.now()
	if cfg.Record != nil {
		r.rec, r.recErr = recovery.ParseRecord(cfg.Record)
	}
	var err error
	if r.session, r.sessionKey, err = recovery.NewSession(); err != nil {
		return nil, err
	}
	if r.tlsCert, err = recoveryCertificate(cfg, r.now()); err != nil {
		return nil, err
	}
	return r, nil
}

// recoveryCertificate makes the self-signed TLS certificate of recovery mode.
func recoveryCertificate(cfg RecoveryConfig, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(RecoveryURI)
	cn := "Cloister Coordinator (recovery mode)"
	if cfg.Simulation {
		cn = "SIMULATION " + cn
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     append([]string{"localhost"}, cfg.DNSNames...),
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, cfg.IPAddresses...),
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("recovery TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// TLSCertificate returns the recovery-mode TLS certificate.
func (r *Recovery) TLSCertificate() *tls.Certificate { return r.tlsCert }

// Done is closed when the recovery completed.
func (r *Recovery) Done() <-chan struct{} { return r.done }

// Possible reports whether the Coordinator can be recovered: a recovery record was found.
func (r *Recovery) Possible() bool { return r.rec != nil }

// impossible explains why recovery cannot work.
func (r *Recovery) impossible() string {
	if r.recErr != nil {
		return "recovery is impossible: the recovery record beside the sealed key is damaged (" + r.recErr.Error() + ")"
	}
	return "recovery is impossible: the manifest named no recovery key holders (governance.recovery), so no shares of the data key exist; restore the data directory on the CPU that sealed it"
}

// Status describes recovery mode.
func (r *Recovery) Status() api.Status {
	s := api.Status{State: api.StateRecovery, Simulation: r.cfg.Simulation, TEE: "sgx", Version: Version}
	if r.cfg.Simulation {
		s.TEE = "sgx-simulation"
	}
	rs := &api.RecoveryStatus{Reason: r.cfg.Reason}
	if r.rec == nil {
		s.Message = r.cfg.Reason + "; " + r.impossible()
	} else {
		rs.Possible, rs.Deployment, rs.Generation, rs.Threshold, rs.Holders = true, r.rec.Deployment, r.rec.Generation, r.rec.Threshold, r.rec.Names()
		r.mu.Lock()
		rs.Received = slices.Clone(r.order)
		r.mu.Unlock()
		s.Message = fmt.Sprintf("RECOVERY MODE: %s; %d of the %d recovery key holders must submit their shares (`cloister recover`)", r.cfg.Reason, r.rec.Threshold, len(r.rec.Holders))
	}
	if r.cfg.Simulation {
		s.Message = "SIMULATION MODE: not secure. " + s.Message
	}
	s.Recovery = rs
	return s
}

// challenge returns the recovery challenge of this session.
func (r *Recovery) challenge() *recovery.Challenge {
	return &recovery.Challenge{Format: recovery.ChallengeFormat, Session: r.session, SessionKey: r.sessionKey.PublicKey().Bytes(),
		Deployment: r.rec.Deployment, Generation: r.rec.Generation, Threshold: r.rec.Threshold, Holders: r.rec.Names()}
}

// RecoveryChallenge returns the challenge with a quote over its binding, the TLS key and nonce.
func (r *Recovery) RecoveryChallenge(ctx context.Context, nonce [32]byte) (*api.RecoveryChallenge, error) {
	if r.rec == nil {
		return nil, errorf(api.CodeConflict, "%s", r.impossible())
	}
	select {
	case r.quoteSlots <- struct{}{}:
		defer func() { <-r.quoteSlots }()
	case <-ctx.Done():
		return nil, &Error{Code: api.CodeNotReady, Message: "too many quote requests at once; try again", Err: ctx.Err()}
	}
	ch := r.challenge()
	q, err := r.cfg.Issuer.Quote(ctx, recovery.ReportData(r.tlsCert.Leaf.RawSubjectPublicKeyInfo, ch.Binding(), nonce))
	if err != nil {
		return nil, fmt.Errorf("get the Coordinator's recovery quote: %w", err)
	}
	_, col, err := r.cfg.Verifier.Verify(ctx, q, r.now())
	if err != nil {
		return nil, fmt.Errorf("the Coordinator's own recovery quote does not verify: %w", err)
	}
	r.quotes.mu.Lock()
	if r.quotes.col != col {
		r.quotes.col, r.quotes.enc = col, attest.EncodeCollateral(col)
	}
	enc := r.quotes.enc
	r.quotes.mu.Unlock()
	r.mu.Lock()
	received := slices.Clone(r.order)
	r.mu.Unlock()
	if received == nil {
		received = []string{}
	}
	return &api.RecoveryChallenge{Challenge: *ch, Quote: q, Collateral: enc, Certificate: string(pki.EncodeCertPEM(r.tlsCert.Leaf)),
		Simulation: r.cfg.Simulation, Reason: r.cfg.Reason, Received: received}, nil
}

// SubmitRecovery checks a holder's submission (see recovery.Open) and keeps its share; the
// share that reaches the threshold rebuilds the data key and completes the recovery.
//
// Refusals: CONFLICT for a share of another deployment or split, for another session, for a
// holder whose share is already in, and once recovery is done; FORBIDDEN for a holder the
// split does not name; SIGNATURE_INVALID for a submission the holder's key did not sign or a
// share that is not the holder's.
func (r *Recovery) SubmitRecovery(ctx context.Context, s *recovery.Submission) (*api.RecoveryResponse, error) {
	if r.rec == nil {
		return nil, errorf(api.CodeConflict, "%s", r.impossible())
	}
	h, y, err := recovery.Open(s, r.rec, r.session, r.sessionKey)
	switch {
	case errors.Is(err, recovery.ErrWrongDeployment), errors.Is(err, recovery.ErrStaleShare), errors.Is(err, recovery.ErrWrongSession):
		return nil, &Error{Code: api.CodeConflict, Message: err.Error(), Err: err}
	case errors.Is(err, recovery.ErrUnknownHolder):
		return nil, &Error{Code: api.CodeForbidden, Message: err.Error(), Err: err}
	case errors.Is(err, recovery.ErrBadSignature), errors.Is(err, recovery.ErrShareMismatch):
		return nil, &Error{Code: api.CodeSignatureInvalid, Message: err.Error(), Err: err}
	case err != nil:
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		clear(y)
		return nil, errorf(api.CodeConflict, "the recovery is already complete")
	}
	if _, dup := r.shares[h.Index]; dup {
		clear(y)
		return nil, errorf(api.CodeConflict, "holder %q's share was already accepted (%d of %d in: %v); each holder counts once", h.Name, len(r.shares), r.rec.Threshold, r.order)
	}
	r.shares[h.Index] = y
	r.order = append(r.order, h.Name)
	resp := &api.RecoveryResponse{Holder: h.Name, Received: slices.Clone(r.order), Threshold: r.rec.Threshold}
	r.log.Info("recovery share accepted", "holder", h.Name, "received", len(r.shares), "threshold", r.rec.Threshold)
	if len(r.shares) < r.rec.Threshold {
		return resp, nil
	}
	if err := r.completeLocked(ctx); err != nil {
		return nil, err
	}
	resp.Recovered = true
	return resp, nil
}

// completeLocked rebuilds the key from the shares, checks it, and hands it to Complete. On
// failure every share is dropped: they rebuilt a key that does not open the state, so at least
// one of them (or the record) is not what it claims, and holders must submit again.
func (r *Recovery) completeLocked(ctx context.Context) error {
	fail := func(err error) error {
		for _, y := range r.shares {
			clear(y)
		}
		r.shares, r.order = map[int][]byte{}, nil
		r.log.Error("recovery failed; every share was dropped", "error", err.Error())
		return err
	}
	key, err := r.rec.Combine(r.shares)
	if err != nil {
		return fail(err)
	}
	defer clear(key)
	if err := r.rec.CheckMAC(key); err != nil {
		return fail(&Error{Code: api.CodeConflict, Message: "the shares rebuilt a key that the recovery record does not know: " + err.Error() + "; every share was dropped", Err: err})
	}
	report := RecoveryReport{Generation: r.rec.Generation, Threshold: r.rec.Threshold, Holders: slices.Clone(r.order), Reason: r.cfg.Reason, Started: r.started, Record: r.rec}
	if err := r.cfg.Complete(ctx, key, report); err != nil {
		return fail(fmt.Errorf("complete the recovery: %w", err))
	}
	for _, y := range r.shares {
		clear(y)
	}
	r.finished = true
	close(r.done)
	r.log.Warn("recovery complete: the data key was rebuilt from the holders' shares and sealed under this CPU's key", "holders", report.Holders, "generation", report.Generation)
	return nil
}
