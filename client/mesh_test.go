package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/pki"
)

// closingProxy forwards loopback connections to a backend until closeAll closes every one of
// them, as a Coordinator (or anything between it and the workload) may.
type closingProxy struct {
	ln      net.Listener
	backend string
	wg      sync.WaitGroup
	// mu guards conns.
	mu    sync.Mutex
	conns []net.Conn
}

func startClosingProxy(t *testing.T, backend string) *closingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &closingProxy{ln: ln, backend: backend}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *closingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(b, c); b.Close() })
		p.wg.Go(func() { io.Copy(c, b); c.Close() })
	}
}

func (p *closingProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestActivateConnClosed closes the connection server-side between the verification of the
// Coordinator and the activation (finding 9): Activate must report ErrConnClosed, which callers
// branch on, without the activation reaching the Coordinator; a new verified session then
// activates.
func TestActivateConnClosed(t *testing.T) {
	c := coordtest.Start(t)
	if _, err := c.Core.SetManifest(t.Context(), nil, loadgen.Manifest("bench")); err != nil {
		t.Fatal(err)
	}
	proxy := startClosingProxy(t, c.MeshAddr)
	expect := client.ExpectSimulated(c.Platform.Root())
	issuer := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	k, err := client.NewWorkloadKey("bench")
	if err != nil {
		t.Fatal(err)
	}

	s, err := client.DialMesh(t.Context(), proxy.ln.Addr().String(), expect)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	proxy.closeAll()
	_, err = s.Activate(t.Context(), "bench", "b-1", k.CSR, issuer)
	if !errors.Is(err, client.ErrConnClosed) {
		t.Fatalf("Activate on a connection the server closed = %v; want an error wrapping ErrConnClosed", err)
	}
	if n := c.Core.ActivationCounts()["bench"]; n != 0 {
		t.Errorf("the Coordinator counted %d activations; the closed connection carried none", n)
	}

	s2, err := client.DialMesh(t.Context(), proxy.ln.Addr().String(), expect)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Activate(t.Context(), "bench", "b-1", k.CSR, issuer); err != nil {
		t.Fatalf("Activate on a new session: %v", err)
	}
	if n := c.Core.ActivationCounts()["bench"]; n != 1 {
		t.Errorf("the Coordinator counted %d activations, want 1", n)
	}
}

// TestActivateDerivesKeyFromCSR: Activate quotes over the key of the CSR it sends, so the
// Coordinator certifies that key; a CSR that does not parse is refused before any quote is made.
func TestActivateDerivesKeyFromCSR(t *testing.T) {
	c := coordtest.Start(t)
	if _, err := c.Core.SetManifest(t.Context(), nil, loadgen.Manifest("bench")); err != nil {
		t.Fatal(err)
	}
	quoted := 0
	sim := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	issuer := issuerFunc(func(ctx context.Context, rd [64]byte) ([]byte, error) {
		quoted++
		return sim.Quote(ctx, rd)
	})
	s, err := client.DialMesh(t.Context(), c.MeshAddr, client.ExpectSimulated(c.Platform.Root()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if _, err := s.Activate(t.Context(), "bench", "b-1", []byte("not a CSR"), issuer); err == nil || !strings.Contains(err.Error(), "CSR") || quoted != 0 {
		t.Errorf("Activate with a malformed CSR = %v after %d quotes; want a CSR error before any quote", err, quoted)
	}
	k, err := client.NewWorkloadKey("bench")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Activate(t.Context(), "bench", "b-1", k.CSR, issuer)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certs[0].RawSubjectPublicKeyInfo, k.SPKI) {
		t.Errorf("the workload certificate is for another key than the CSR's")
	}
}

type issuerFunc func(ctx context.Context, reportData [64]byte) ([]byte, error)

func (f issuerFunc) Quote(ctx context.Context, rd [64]byte) ([]byte, error) { return f(ctx, rd) }

// TestDialMeshSharedQuote: launchers verify the Coordinator with its shared epoch quote, the
// same for every connection in an epoch, then activate on that connection; WithNonceQuote asks
// for a quote over a nonce of its own instead.
func TestDialMeshSharedQuote(t *testing.T) {
	c := coordtest.Start(t)
	if _, err := c.Core.SetManifest(t.Context(), nil, loadgen.Manifest("bench")); err != nil {
		t.Fatal(err)
	}
	expect := client.ExpectSimulated(c.Platform.Root())
	var quotes [][]byte
	for range 2 {
		s, err := client.DialMesh(t.Context(), c.MeshAddr, expect)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Verified.EpochResponse == nil || s.Verified.Response != nil || !s.Verified.Coordinator.Equal(c.Core.TLSCertificate().Leaf) {
			t.Fatalf("DialMesh verified with %+v; want the shared epoch quote of this Coordinator", s.Verified)
		}
		quotes = append(quotes, s.Verified.EpochResponse.Quote)
		k, err := client.NewWorkloadKey("bench")
		if err != nil {
			t.Fatal(err)
		}
		issuer := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
		if _, err := s.Activate(t.Context(), "bench", "b-1", k.CSR, issuer); err != nil {
			t.Fatalf("activate after the shared quote: %v", err)
		}
	}
	if !bytes.Equal(quotes[0], quotes[1]) {
		t.Error("two connections in one epoch got different shared quotes")
	}
	s, err := client.DialMesh(t.Context(), c.MeshAddr, expect, client.WithNonceQuote())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Verified.Response == nil || s.Verified.EpochResponse != nil || s.Verified.Nonce == [32]byte{} {
		t.Errorf("DialMesh(WithNonceQuote) verified with %+v; want a quote over its nonce", s.Verified)
	}
	// A launcher whose clock is far ahead of the Coordinator's refuses its shared quote.
	late := expect
	late.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := client.DialMesh(t.Context(), c.MeshAddr, late); err == nil || !strings.Contains(err.Error(), "expected a recent quote") {
		t.Errorf("DialMesh an hour later = %v; want the shared quote refused as old", err)
	}
}

// TestMeshManifest reads the manifest on a verified workload-API session: not ready (temporary)
// before one is set, then the manifest as it was set, which the activation on the same session
// is not held up by.
func TestMeshManifest(t *testing.T) {
	c := coordtest.Start(t)
	s, err := client.DialMesh(t.Context(), c.MeshAddr, client.ExpectSimulated(c.Platform.Root()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Manifest(t.Context())
	if e, ok := errors.AsType[*client.APIError](err); !ok || !e.Temporary() {
		t.Errorf("Manifest before one is set = %v; want a temporary *APIError", err)
	}
	doc := loadgen.Manifest("bench")
	if _, err := c.Core.SetManifest(t.Context(), nil, doc); err != nil {
		t.Fatal(err)
	}
	got, err := s.Manifest(t.Context())
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("Manifest = %.80q, %v; want the manifest as set", got, err)
	}
	k, err := client.NewWorkloadKey("bench")
	if err != nil {
		t.Fatal(err)
	}
	issuer := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	if _, err := s.Activate(t.Context(), "bench", "b-1", k.CSR, issuer); err != nil {
		t.Errorf("Activate after Manifest on the same session: %v", err)
	}
}
