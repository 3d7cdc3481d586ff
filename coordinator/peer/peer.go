// Package peer shares a shared state's data key between Coordinator replicas by mutual
// attestation.
//
// A replica that has no copy of the data key sealed to its CPU (a new CPU) asks a running
// replica for it over TLS. Both sides use ephemeral self-signed certificates: trust comes only
// from SGX quotes, each over SHA-256 of a domain tag, the side's role and the connection's TLS
// exporter value (RFC 8446 §7.5, label "EXPORTER-cloister-peer-key-v1"). The exporter depends
// on both sides' handshake secrets, so a quote made for one connection is worthless on any
// other: a relay between two connections would need two different quotes.
//
// The rule each side applies to the other's verified quote:
//
//   - the same MRSIGNER and ISVPRODID as its own (the same Coordinator product);
//   - no debug enclave, unless this Coordinator runs in simulation (where nothing is secure);
//   - revocation lists checked; the giver accepts only the default TCB statuses (UpToDate,
//     SWHardeningNeeded), the requester any status but Revoked (see giverTCBStatuses);
//   - the giver gives the key only to a requester whose ISVSVN is at least its own: the key
//     never flows to an older, possibly vulnerable, version. The requester takes a key from a
//     giver of any ISVSVN: the giver holds the key already, so refusing it protects nothing,
//     and an upgrade onto new CPUs can take the key from the replicas it replaces.
//
// The giver sends the key and the newest state version it has seen; the requester accepts the
// key only if the state's sealed header authenticates under it (see store.KeyFetcher), and
// refuses a state older than the version the giver saw.
//
// Every message is one frame (type, length, payload) of at most MaxFrame bytes; a connection
// carries one request and one answer and lasts at most ExchangeTimeout.
package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

const (
	// ALPN names the protocol, and its version, in the TLS handshake.
	ALPN = "cloister-peer-key/1"
	// ExporterLabel is the TLS exporter label of the channel binding.
	ExporterLabel = "EXPORTER-cloister-peer-key-v1"
	// reportPrefix separates a peer quote's report data from every other.
	reportPrefix = "cloister-peer-key-report-v1\x00"
	// ExchangeTimeout bounds one connection, handshake to answer.
	ExchangeTimeout = 30 * time.Second
)

// Roles bound into the report data, so that a requester's quote cannot be sent back as a giver's.
const (
	roleRequest = "request"
	roleGive    = "give"
)

// Identity is what two replicas must share: the enclave's signer, product and security
// version, and whether it is a debug enclave.
type Identity struct {
	MRSigner [32]byte
	ProdID   uint16
	SVN      uint16
	Debug    bool
}

func (id Identity) String() string {
	return fmt.Sprintf("mrsigner %s, isvprodid %d, isvsvn %d", hex.EncodeToString(id.MRSigner[:]), id.ProdID, id.SVN)
}

// Verifier verifies an SGX quote (attest.Verifier).
type Verifier interface {
	Verify(ctx context.Context, quote []byte, at time.Time) (*verify.Result, *verify.Collateral, error)
}

// Attester proves this Coordinator and checks a peer. Its fields are set once.
type Attester struct {
	Issuer   attest.Issuer
	Verifier Verifier
	// Self is this Coordinator's identity (see SelfIdentity).
	Self Identity
	// Simulation accepts debug enclaves and marks what the side says as insecure.
	Simulation bool
	// Now is the clock quotes are verified at; nil means time.Now.
	Now func() time.Time
}

// SelfIdentity makes and verifies a quote of this enclave and returns its identity, so that
// peers are compared with what the hardware says this Coordinator is, not with a constant.
func SelfIdentity(ctx context.Context, issuer attest.Issuer, v Verifier) (Identity, error) {
	var rd [64]byte
	copy(rd[:], reportPrefix+"self")
	q, err := issuer.Quote(ctx, rd)
	if err != nil {
		return Identity{}, fmt.Errorf("peer: quote this Coordinator: %w", err)
	}
	res, _, err := v.Verify(ctx, q, time.Now())
	if err != nil {
		return Identity{}, fmt.Errorf("peer: this Coordinator's own quote does not verify: %w", err)
	}
	e := res.Enclave
	return Identity{MRSigner: e.MRSigner, ProdID: e.ISVProdID, SVN: e.ISVSVN, Debug: e.Debug}, nil
}

// reportData binds a quote to a role and a connection: SHA-256(prefix ‖ role ‖ 0 ‖ exporter),
// then zeros.
func reportData(role string, exporter []byte) [64]byte {
	h := sha256.New()
	h.Write([]byte(reportPrefix))
	h.Write([]byte(role))
	h.Write([]byte{0})
	h.Write(exporter)
	var rd [64]byte
	h.Sum(rd[:0])
	return rd
}

// exporter returns the connection's channel binding.
func exporter(cs tls.ConnectionState) ([]byte, error) {
	b, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("peer: TLS exporter: %w", err)
	}
	return b, nil
}

// quote proves this Coordinator in role on the connection.
func (a *Attester) quote(ctx context.Context, role string, exp []byte) ([]byte, error) {
	q, err := a.Issuer.Quote(ctx, reportData(role, exp))
	if err != nil {
		return nil, fmt.Errorf("peer: quote this Coordinator: %w", err)
	}
	return q, nil
}

// giverTCBStatuses are the TCB statuses a requester accepts from a giver: every status but
// Revoked. The giver holds the key already, so refusing it for an out-of-date platform protects
// nothing; after an Intel TCB recovery (a microcode update) the patched replicas must still take
// the key from the unpatched ones they replace. The giver stays strict (the policy's default
// statuses): the key never flows to an out-of-date platform.
var giverTCBStatuses = []verify.TCBStatus{
	verify.UpToDate, verify.SWHardeningNeeded, verify.ConfigurationNeeded,
	verify.ConfigurationAndSWHardeningNeeded, verify.OutOfDate, verify.OutOfDateConfigurationNeeded,
}

// check verifies a peer's quote made in role on the connection, and applies the rule: the same
// signer and product, no debug enclave outside simulation, an ISVSVN of at least minSVN, a TCB
// status in tcb (nil: the default statuses), and revocation lists checked (the collateral comes
// from the PCS or the simulated platform, never from the peer, but a verifier that silently
// skips the CRLs would miss a revoked platform). Its errors name what was expected and what was
// found.
func (a *Attester) check(ctx context.Context, q []byte, role string, exp []byte, minSVN uint16, tcb []verify.TCBStatus) (Identity, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	res, _, err := a.Verifier.Verify(ctx, q, now())
	if err != nil {
		return Identity{}, fmt.Errorf("the peer's quote does not verify: %w", err)
	}
	rd := reportData(role, exp)
	p := verify.Policy{
		MRSigner: a.Self.MRSigner, ISVProdID: a.Self.ProdID, MinISVSVN: minSVN,
		AllowDebug: a.Simulation, ReportData: rd[:32], TCBStatuses: tcb, RequireCRLs: true,
	}
	e := res.Enclave
	found := Identity{MRSigner: e.MRSigner, ProdID: e.ISVProdID, SVN: e.ISVSVN, Debug: e.Debug}
	if !bytes.Equal(e.ReportData[:32], rd[:32]) {
		return found, fmt.Errorf("the peer's quote is not bound to this connection as a %q: report data %x, expected %x (a quote relayed from another connection, or made for another role)",
			role, e.ReportData[:32], rd[:32])
	}
	if err := p.Check(res); err != nil {
		return found, fmt.Errorf("the peer (%s) is not this Coordinator (%s; a peer needs isvsvn at least %d): %w", found, a.Self, minSVN, err)
	}
	return found, nil
}
