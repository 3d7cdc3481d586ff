package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/peer"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func slice(name string, port *int32, ready, notReady []string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "peers"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if port != nil {
		s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To(peerPortName), Port: port}}
	}
	for _, a := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	for _, a := range notReady {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
	}
	return s
}

// TestPeerAddrs: a slice without a usable port is skipped, not the whole list; an address
// listed twice (ready in one slice, not ready in another) is asked once, ready first.
func TestPeerAddrs(t *testing.T) {
	c := fake.NewClientset(
		slice("a", ptr.To[int32](7000), []string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.3"}),
		slice("b", nil, []string{"10.0.0.9"}, nil),
		slice("c", ptr.To[int32](7000), []string{"10.0.0.1"}, []string{"10.0.0.2"}),
	)
	got, err := peerAddrs(t.Context(), c, "ns", "peers", "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}
	if !slices.Equal(got, want) {
		t.Fatalf("peerAddrs = %v, want %v", got, want)
	}
}

// fixedKeys is a peer.KeySource holding a fixed key and version.
type fixedKeys struct {
	key []byte
	v   store.Version
}

func (f *fixedKeys) WithDataKey(fn func([]byte) error) error { return fn(f.key) }
func (f *fixedKeys) Version() store.Version                  { return f.v }

// TestFetchFromPeersHighestVersion: the key is taken with the highest version among the peers
// that give it, not the first peer's; a failure to list the peers is ErrUnavailable.
func TestFetchFromPeersHighestVersion(t *testing.T) {
	issuer, v := simCoordinator(t)
	self, err := peer.SelfIdentity(t.Context(), issuer, v)
	if err != nil {
		t.Fatal(err)
	}
	att := &peer.Attester{Issuer: issuer, Verifier: v, Self: self, Simulation: true}
	key := bytes.Repeat([]byte{7}, 32)
	var port int32
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Three givers on 127.0.0.1, .2 and .3 with one port: the first is behind.
	for i, n := range []uint64{3, 9, 5} {
		srv, err := peer.NewServer(att, &fixedKeys{key: key, v: store.Version{N: n}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		host := net.IPv4(127, 0, 0, byte(i+1)).String()
		addr := net.JoinHostPort(host, "0")
		if port != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("listening on %s: %v", addr, err)
		}
		port = int32(ln.Addr().(*net.TCPAddr).Port)
		go srv.Serve(ctx, ln)
	}
	c := fake.NewClientset(slice("a", ptr.To(port), []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, nil))
	cfg := Config{StateNamespace: "ns", PeerService: "peers"}
	check := func(k []byte) error {
		if !bytes.Equal(k, key) {
			return errors.New("not the key")
		}
		return nil
	}
	got, seen, err := fetchFromPeers(t.Context(), c, cfg, att, check, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) || seen.N != 9 {
		t.Fatalf("fetchFromPeers = version %d, want the key at version 9 (the highest)", seen.N)
	}
	cfg.StateNamespace = ""
	c.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is down")
	})
	if _, _, err := fetchFromPeers(t.Context(), c, cfg, att, check, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("listing failed: %v, want ErrUnavailable", err)
	}
}

// failingIssuer fails its first quote.
type failingIssuer struct {
	attest.Issuer
	failed bool
}

func (f *failingIssuer) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	if !f.failed {
		f.failed = true
		return nil, errors.New("the quoting enclave is not ready")
	}
	return f.Issuer.Quote(ctx, rd)
}

// TestPeerAttesterRetries: a failed self-quote is not kept; the next call tries again.
func TestPeerAttesterRetries(t *testing.T) {
	base, v := simCoordinator(t)
	issuer := &failingIssuer{Issuer: base}
	tt := &tee{issuer: issuer, verifier: v, simulation: true}
	if _, err := tt.peerAttester(t.Context()); err == nil {
		t.Fatal("first call: no error, want the quote's failure")
	}
	if _, err := tt.peerAttester(t.Context()); err != nil {
		t.Fatalf("second call: %v, want an attester", err)
	}
}

// simCoordinator returns the issuer of a simulated Coordinator (signer "coordinator", SVN 1)
// on a new simulated platform, and a verifier of its quotes.
func simCoordinator(t *testing.T) (*attest.SimIssuer, *attest.Verifier) {
	t.Helper()
	p, err := sim.Create(filepath.Join(t.TempDir(), "platform"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	signer := sha256.Sum256([]byte("coordinator"))
	issuer := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(sha256.Sum256([]byte("m")), signer, attest.CoordinatorProdID, 1)}
	return issuer, attest.NewVerifier(verify.New(p.Root()), attest.StaticCollateral{C: col})
}
