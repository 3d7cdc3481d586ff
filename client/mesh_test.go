package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
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
	expect := client.Expect{SGXRoot: c.Platform.Root(), MRSigner: &attest.SimCoordinatorSigner, ISVProdID: attest.CoordinatorProdID}
	issuer := &attest.SimIssuer{Platform: c.Platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	s, err := client.DialMesh(t.Context(), proxy.ln.Addr().String(), expect)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	proxy.closeAll()
	_, err = s.Activate(t.Context(), "bench", "b-1", csr, spki, issuer)
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
	if _, err := s2.Activate(t.Context(), "bench", "b-1", csr, spki, issuer); err != nil {
		t.Fatalf("Activate on a new session: %v", err)
	}
	if n := c.Core.ActivationCounts()["bench"]; n != 1 {
		t.Errorf("the Coordinator counted %d activations, want 1", n)
	}
}
