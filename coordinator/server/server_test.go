package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
)

// platform is the simulated SGX platform of every test; made once by TestMain.
var platform *sim.Platform

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cloister-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	platform, err = sim.Create(filepath.Join(dir, "platform"), sim.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var testSigner = sha256.Sum256([]byte("test signer"))

func goodBody() sgx.ReportBody {
	return attest.SimEnclaveBody(sha256.Sum256([]byte("test enclave")), testSigner, 7, 3)
}

// fixture is a Server on a real core, a temporary store and the simulated platform.
type fixture struct {
	t    testing.TB
	c    *core.Core
	db   *store.DB
	s    *Server
	reg  *prometheus.Registry
	logs *logbuf.Buffer
	// meshState is the server side of a real TLS 1.3 connection to the workload API: the
	// handler needs one for the activation exporter.
	meshState tls.ConnectionState
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	sealer, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "state"), sealer, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	col, err := verify.LoadCollateral(platform.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, reg: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	f.c, err = core.New(t.Context(), core.Config{
		Store:      db,
		Verifier:   attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
		Issuer:     &attest.SimIssuer{Platform: platform, Body: attest.SimEnclaveBody([32]byte{1}, attest.SimCoordinatorSigner, attest.CoordinatorProdID, attest.CoordinatorSVN)},
		Simulation: true,
	}, core.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	f.s = New(f.c, WithLogger(log), WithRegisterer(f.reg))
	f.meshState = handshake(t, f.s.MeshTLSConfig(), nil)
	return f
}

// handshake runs a TLS handshake over a pipe and returns the server's connection state.
func handshake(t testing.TB, cfg *tls.Config, clientCert *tls.Certificate) tls.ConnectionState {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, cfg)
	ccfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if clientCert != nil {
		ccfg.Certificates = []tls.Certificate{*clientCert}
	}
	cl := tls.Client(b, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- cl.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv.ConnectionState()
}

// user is a manifest user's certificate and key.
type user struct {
	cert    *x509.Certificate
	certPEM string
	tls     tls.Certificate
}

var (
	usersOnce sync.Once
	users     map[string]*user
)

func testUser(name string) *user {
	usersOnce.Do(func() {
		users = map[string]*user{}
		for i, n := range []string{"admin", "reader", "stranger"} {
			users[n] = newUser(n, int64(i+1), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		}
	})
	return users[name]
}

// newUser makes a self-signed user certificate valid from notBefore to notAfter.
func newUser(name string, serial int64, notBefore, notAfter time.Time) *user {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &user{cert: c, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}}
}

func testManifest(t testing.TB) []byte {
	t.Helper()
	return manifestWith(t, nil)
}

// manifestWith is testManifest with edit applied before encoding.
func manifestWith(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"packages": map[string]any{"signed": map[string]any{"mrsigner": hex.EncodeToString(testSigner[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{
			"web":     map[string]any{"package": "signed", "env": map[string]string{"K": "{{.Secrets.key.Hex}}"}},
			"limited": map[string]any{"package": "signed", "max_activations": 1},
		},
		"secrets": map[string]any{
			"key":    map[string]any{"type": "symmetric-key", "size": 128},
			"upload": map[string]any{"type": "user-defined", "max_size": 8},
		},
		"users": map[string]any{
			"admin":  map[string]any{"certificate": testUser("admin").certPEM, "roles": []string{"admin", "writer"}},
			"reader": map[string]any{"certificate": testUser("reader").certPEM, "roles": []string{"reader"}},
		},
		"roles": map[string]any{
			"admin":  map[string]any{"resource": "manifest", "actions": []string{"update"}},
			"reader": map[string]any{"resource": "secrets", "names": []string{"key", "upload"}, "actions": []string{"read"}},
			"writer": map[string]any{"resource": "secrets", "names": []string{"upload"}, "actions": []string{"write"}},
		},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call is one request through a handler.
type call struct {
	method, path string
	body         []byte
	user         string // a manifest user's certificate on the connection
	mesh         bool   // the workload API instead of the client API
	noTLS        bool
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    api.ErrorBody
}

func (f *fixture) do(c call) answer {
	f.t.Helper()
	return f.doT(f.t, c)
}

// doT is do for a test other than the fixture's own (a fuzz target's).
func (f *fixture) doT(t testing.TB, c call) answer {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), c.method, c.path, bytes.NewReader(c.body))
	h := f.s.ClientHandler()
	if c.mesh {
		h = f.s.MeshHandler()
	}
	switch {
	case c.noTLS:
	case c.mesh:
		st := f.meshState
		req.TLS = &st
	default:
		req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
		if c.user != "" {
			req.TLS.PeerCertificates = []*x509.Certificate{testUser(c.user).cert}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if a.status >= 300 {
		var e api.Error
		dec := json.NewDecoder(bytes.NewReader(a.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not an API error: %q", c.method, c.path, a.status, a.body)
		}
		a.err = e.Error
		if id := rec.Header().Get(api.RequestIDHeader); id == "" || id != e.Error.RequestID {
			t.Errorf("%s %s: request ID header %q, body %q; want the same non-empty ID", c.method, c.path, id, e.Error.RequestID)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error with Content-Type %q", c.method, c.path, ct)
		}
	}
	return a
}

// activation returns the body of an activation request whose quote binds the fixture's mesh
// connection and a fresh CSR key, with evidence from body.
func (f *fixture) activation(workload, instance string, body sgx.ReportBody) []byte {
	f.t.Helper()
	k, err := client.NewWorkloadKey(workload)
	if err != nil {
		f.t.Fatal(err)
	}
	exp, err := attest.Exporter(&f.meshState)
	if err != nil {
		f.t.Fatal(err)
	}
	q, err := (&attest.SimIssuer{Platform: platform, Body: body}).Quote(f.t.Context(), attest.ActivationReportData(k.SPKI, exp))
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := json.Marshal(api.ActivationRequest{Workload: workload, Instance: instance, Quote: q, CSR: k.CSR})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// counter returns the API request counter of a route and status code.
func (f *fixture) counter(apiName, route string, code int) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cloister_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["api"] == apiName && got["route"] == route && got["code"] == fmt.Sprint(code) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func bigBody(n int) []byte {
	// A JSON string of n bytes in all: {"x":"aaa…"}.
	return append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), n-8)...), `"}`...)
}
