package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
)

var platform struct {
	once sync.Once
	p    *sim.Platform
	v    *attest.Verifier
	err  error
}

// testPlatform is one simulated SGX platform for the whole test binary (creating one is slow).
func testPlatform(tb testing.TB) (*sim.Platform, *attest.Verifier) {
	tb.Helper()
	platform.once.Do(func() {
		dir, err := tempDir()
		if err != nil {
			platform.err = err
			return
		}
		if platform.p, err = sim.Create(filepath.Join(dir, "platform"), sim.Options{}); err != nil {
			platform.err = err
			return
		}
		col, err := verify.LoadCollateral(platform.p.CollateralDir())
		if err != nil {
			platform.err = err
			return
		}
		platform.v = attest.NewVerifier(verify.New(platform.p.Root()), attest.StaticCollateral{C: col})
	})
	if platform.err != nil {
		tb.Fatal(platform.err)
	}
	return platform.p, platform.v
}

var (
	coordSigner  = sha256.Sum256([]byte("test coordinator signer"))
	otherSigner  = sha256.Sum256([]byte("another signer"))
	coordMeasure = sha256.Sum256([]byte("test coordinator"))
)

// enclave is a simulated Coordinator enclave of the given identity.
type enclave struct {
	signer [32]byte
	prodID uint16
	svn    uint16
	debug  bool
}

var coordinator = enclave{signer: coordSigner, prodID: attest.CoordinatorProdID, svn: 2}

// attester returns an attester whose quotes come from e and which believes itself to be self
// (normally the same: an impostor's differs).
func attester(tb testing.TB, e enclave, self Identity, simulation bool) *Attester {
	p, v := testPlatform(tb)
	body := attest.SimEnclaveBody(coordMeasure, e.signer, e.prodID, e.svn)
	if e.debug {
		body.Attributes.Flags |= sgx.AttrDebug
	}
	return &Attester{Issuer: &attest.SimIssuer{Platform: p, Body: body}, Verifier: v, Self: self, Simulation: simulation}
}

func identity(e enclave) Identity {
	return Identity{MRSigner: e.signer, ProdID: e.prodID, SVN: e.svn, Debug: e.debug}
}

// fakeKeys is a KeySource holding a fixed key.
type fakeKeys struct {
	key []byte
	v   store.Version
}

func (f *fakeKeys) WithDataKey(fn func([]byte) error) error { return fn(f.key) }
func (f *fakeKeys) Version() store.Version                  { return f.v }

var testKey = bytes.Repeat([]byte{0x42}, KeySize)

// serve runs a giver of testKey with att on a loopback port.
func serve(tb testing.TB, att *Attester) string {
	tb.Helper()
	srv, err := NewServer(att, &fakeKeys{key: testKey, v: store.Version{N: 7, Hash: [32]byte{7}}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestHandshake(t *testing.T) {
	self := identity(coordinator)
	older, newer := coordinator, coordinator
	older.svn, newer.svn = 1, 3
	wrongSigner, wrongProduct, debug := coordinator, coordinator, coordinator
	wrongSigner.signer = otherSigner
	wrongProduct.prodID = 1
	debug.debug = true
	for _, tc := range []struct {
		name       string
		giver      *Attester
		requester  *Attester
		wantErr    string // "" means the key is given
		wantRefuse bool   // the giver refused (ErrRefused)
	}{
		{name: "same Coordinator", giver: attester(t, coordinator, self, false), requester: attester(t, coordinator, self, false)},
		{name: "newer requester", giver: attester(t, coordinator, self, false), requester: attester(t, newer, identity(newer), false)},
		{name: "older giver", giver: attester(t, older, identity(older), false), requester: attester(t, coordinator, self, false)},
		{name: "older requester", giver: attester(t, coordinator, self, false), requester: attester(t, older, identity(older), false),
			wantErr: "isvsvn 1 not accepted; expected at least 2", wantRefuse: true},
		{name: "other signer", giver: attester(t, coordinator, self, false), requester: attester(t, wrongSigner, identity(wrongSigner), false),
			wantErr: "mrsigner", wantRefuse: true},
		{name: "other product", giver: attester(t, coordinator, self, false), requester: attester(t, wrongProduct, identity(wrongProduct), false),
			wantErr: "isvprodid 1 not accepted; expected 49413", wantRefuse: true},
		{name: "debug requester", giver: attester(t, coordinator, self, false), requester: attester(t, debug, identity(debug), false),
			wantErr: "debug", wantRefuse: true},
		{name: "debug requester in simulation", giver: attester(t, coordinator, self, true), requester: attester(t, debug, identity(debug), true)},
		// An impostor giver believes it is this Coordinator, but its quotes say otherwise: the
		// requester refuses its key.
		{name: "impostor giver", giver: attester(t, wrongSigner, self, false), requester: attester(t, coordinator, self, false),
			wantErr: "refused its key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, tc.giver)
			key, seen, err := Fetch(t.Context(), addr, tc.requester)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if !bytes.Equal(key, testKey) || seen.N != 7 {
					t.Fatalf("Fetch = %x, version %d; want the giver's key and version 7", key, seen.N)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Fetch error = %v, want one containing %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrRefused) != tc.wantRefuse {
				t.Errorf("errors.Is(err, ErrRefused) = %v, want %v", !tc.wantRefuse, tc.wantRefuse)
			}
			if key != nil {
				t.Errorf("a key was returned with the error")
			}
		})
	}
}

// TestRelayRefused: a relay between a genuine requester and a giver (two TLS connections,
// frames copied across) gets nothing: the requester's quote is bound to the first connection's
// exporter, which the giver's connection does not have.
func TestRelayRefused(t *testing.T) {
	self := identity(coordinator)
	giver := serve(t, attester(t, coordinator, self, false))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, err := ephemeralCert(false)
	if err != nil {
		t.Fatal(err)
	}
	relayErr := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			relayErr <- err
			return
		}
		defer raw.Close()
		front := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{ALPN}, ClientAuth: tls.RequireAnyClientCert})
		back, err := tls.Dial("tcp", giver, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{ALPN}, InsecureSkipVerify: true})
		if err != nil {
			relayErr <- err
			return
		}
		defer back.Close()
		_, q, err := readFrame(front, frameRequest)
		if err != nil {
			relayErr <- err
			return
		}
		writeFrame(back, frameRequest, q)
		typ, p, err := readFrame(back, frameKey, frameRefused)
		if err != nil {
			relayErr <- err
			return
		}
		if typ == frameKey {
			relayErr <- errors.New("the giver sent the key to a relay")
			return
		}
		writeFrame(front, typ, p)
		relayErr <- nil
	}()
	_, _, err = Fetch(t.Context(), ln.Addr().String(), attester(t, coordinator, self, false))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "relayed") {
		t.Fatalf("Fetch through a relay: %v, want a refusal naming a relayed quote", err)
	}
	if err := <-relayErr; err != nil {
		t.Fatal(err)
	}
}

// TestReflectedQuoteRefused: a giver that answers with the requester's own quote (a reflection)
// is refused: the quote is bound to the role "request".
func TestReflectedQuoteRefused(t *testing.T) {
	self := identity(coordinator)
	a := attester(t, coordinator, self, false)
	exp := []byte("0123456789abcdef0123456789abcdef")
	q, err := a.quote(t.Context(), roleRequest, exp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.check(t.Context(), q, roleGive, exp, 0, nil); err == nil || !strings.Contains(err.Error(), "not bound to this connection") {
		t.Fatalf("check of a reflected quote: %v, want a binding error", err)
	}
	if _, err := a.check(t.Context(), q, roleRequest, exp, 0, nil); err != nil {
		t.Fatalf("check of the quote in its own role: %v", err)
	}
}

// withCollateral returns a copy of a whose verifier sees the platform through collateral made
// with c (another TCB status, a revocation).
func withCollateral(t *testing.T, a *Attester, c sim.CollateralOptions) *Attester {
	t.Helper()
	p, _ := testPlatform(t)
	dir := t.TempDir()
	if err := p.WriteCollateral(dir, c); err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Verifier = attest.NewVerifier(verify.New(p.Root()), attest.StaticCollateral{C: col})
	return &b
}

// TestTCBStatuses: after an Intel TCB recovery the patched requester still takes the key from a
// giver whose platform is now OutOfDate, but never from a revoked one; the giver gives nothing
// to a requester on an OutOfDate platform.
func TestTCBStatuses(t *testing.T) {
	self := identity(coordinator)
	plain := attester(t, coordinator, self, false)
	outOfDate := withCollateral(t, plain, sim.CollateralOptions{TCBStatus: verify.OutOfDate})
	revoked := withCollateral(t, plain, sim.CollateralOptions{RevokePCK: true})
	if _, _, err := Fetch(t.Context(), serve(t, plain), outOfDate); err != nil {
		t.Fatalf("requester that sees the giver OutOfDate: %v, want the key", err)
	}
	if _, _, err := Fetch(t.Context(), serve(t, plain), revoked); err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("requester that sees the giver revoked: %v, want its own refusal", err)
	}
	if _, _, err := Fetch(t.Context(), serve(t, outOfDate), plain); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "OutOfDate") {
		t.Fatalf("giver that sees the requester OutOfDate: %v, want a refusal naming OutOfDate", err)
	}
}

// TestCRLsRequired: a verifier whose collateral lacks the CRLs does not pass a peer.
func TestCRLsRequired(t *testing.T) {
	self := identity(coordinator)
	a := attester(t, coordinator, self, false)
	p, _ := testPlatform(t)
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	col.RootCACRL, col.PCKCRL = nil, nil
	a.Verifier = attest.NewVerifier(verify.New(p.Root()), attest.StaticCollateral{C: col})
	exp := []byte("0123456789abcdef0123456789abcdef")
	q, err := a.quote(t.Context(), roleGive, exp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.check(t.Context(), q, roleGive, exp, 0, giverTCBStatuses); err == nil {
		t.Fatal("check without CRLs passed, want a refusal")
	}
}

func TestSelfIdentity(t *testing.T) {
	a := attester(t, coordinator, Identity{}, false)
	id, err := SelfIdentity(t.Context(), a.Issuer, a.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	if id != identity(coordinator) {
		t.Fatalf("SelfIdentity = %v, want %v", id, identity(coordinator))
	}
}

// BenchmarkFetch measures one key fetch on loopback: TLS 1.3 handshake, two simulated quotes
// made and two verified. On SGX the quotes cost the Quoting Enclave milliseconds more.
func BenchmarkFetch(b *testing.B) {
	self := identity(coordinator)
	addr := serve(b, attester(b, coordinator, self, false))
	req := attester(b, coordinator, self, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Fetch(context.Background(), addr, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRefusalLogBounded: a flood of connections that fail the handshake logs at most the
// burst of refusal lines, not one line each.
func TestRefusalLogBounded(t *testing.T) {
	var logs logbuf.Buffer
	srv, err := NewServer(attester(t, coordinator, identity(coordinator), true), &fakeKeys{key: testKey}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	const flood = 5 * refusalBurst
	start := time.Now()
	for range flood {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("not a TLS ClientHello\n"))
		io.Copy(io.Discard, c) // the server closes it
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The bucket refills at refusalRate a second while the flood lasts.
	most := refusalBurst + int(time.Since(start).Seconds()*refusalRate) + 1
	lines := strings.Count(logs.String(), "TLS handshake failed")
	if lines == 0 || lines > most || lines >= flood {
		t.Errorf("%d of %d failed handshakes were logged; want 1 to %d", lines, flood, most)
	}
}
