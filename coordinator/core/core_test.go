package core

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
)

// platform is the simulated SGX platform every test quotes on; made once by TestMain.
var platform *sim.Platform

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cloister-core-test-")
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

// Identities of the test enclaves.
var (
	testSigner    = sha256.Sum256([]byte("test enclave signer"))
	otherSigner   = sha256.Sum256([]byte("another signer"))
	testMREnclave = sha256.Sum256([]byte("test enclave"))
)

// goodBody is the report body of an enclave that the "signed" package admits.
func goodBody() sgx.ReportBody { return attest.SimEnclaveBody(testMREnclave, testSigner, 7, 3) }

// fixture is a Coordinator core on a temporary store and the simulated platform.
type fixture struct {
	t    *testing.T
	dir  string
	db   *store.DB
	c    *Core
	reg  *prometheus.Registry
	logs *logbuf.Buffer
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), now: time.Now()}
	f.open(true)
	return f
}

// open opens the store and a Core on it; the fixture's previous Core, if any, must be closed.
func (f *fixture) open(simulation bool) {
	f.t.Helper()
	c, err := f.tryOpen(simulation)
	if err != nil {
		f.t.Fatalf("core.New: %v", err)
	}
	f.c = c
}

func (f *fixture) tryOpen(simulation bool) (*Core, error) {
	f.t.Helper()
	sealer, err := seal.NewSimulated(filepath.Join(f.dir, "seal.key"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.db, err = store.Open(filepath.Join(f.dir, "state"), sealer, store.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	db := f.db
	f.t.Cleanup(func() { db.Close() })
	col, err := verify.LoadCollateral(platform.CollateralDir())
	if err != nil {
		f.t.Fatal(err)
	}
	f.reg = prometheus.NewRegistry()
	f.logs = &logbuf.Buffer{}
	return New(f.t.Context(), Config{
		Store:      f.db,
		Verifier:   attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
		Issuer:     &attest.SimIssuer{Platform: platform, Body: attest.SimEnclaveBody(sha256.Sum256([]byte("coordinator")), attest.SimCoordinatorSigner, 1, 1)},
		Simulation: simulation,
	}, WithLogger(slog.New(slog.NewJSONHandler(f.logs, nil))), WithRegisterer(f.reg), WithClock(func() time.Time { return f.now }))
}

// reopen closes the store and opens a new Core on the same state, as a restart does.
func (f *fixture) reopen() {
	f.t.Helper()
	if err := f.db.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open(true)
}

// testUser is a manifest user.
type testUser struct {
	name    string
	cert    *x509.Certificate
	certPEM string
}

var (
	usersOnce sync.Once
	users     map[string]*testUser
)

func user(t *testing.T, name string) *testUser {
	t.Helper()
	usersOnce.Do(func() {
		users = map[string]*testUser{}
		for _, n := range []string{"admin", "reader", "nobody", "stranger"} {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(len(users) + 1)), Subject: pkix.Name{CommonName: n},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				panic(err)
			}
			cert, _ := x509.ParseCertificate(der)
			users[n] = &testUser{name: n, cert: cert, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
		}
	})
	return users[name]
}

// as returns the client certificate of the named test user; "" is the anonymous caller (nil).
func as(t *testing.T, name string) *x509.Certificate {
	if name == "" {
		return nil
	}
	return user(t, name).cert
}

// testManifest is the deployment manifest of most tests; edit changes it before encoding.
func testManifest(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"packages": map[string]any{
			"signed": map[string]any{"mrsigner": hex.EncodeToString(testSigner[:]), "isvprodid": 7, "min_isvsvn": 3},
			"exact":  map[string]any{"mrenclave": hex.EncodeToString(testMREnclave[:])},
			"debug":  map[string]any{"mrsigner": hex.EncodeToString(testSigner[:]), "isvprodid": 7, "min_isvsvn": 3, "debug": true},
		},
		"workloads": map[string]any{
			"web": map[string]any{
				"package": "signed",
				"tls":     map[string]any{"dns": []string{"web.test"}, "ip": []string{"10.0.0.1"}},
				"env":     map[string]string{"SHARED": "{{.Secrets.shared.Hex}}", "INST": "{{.Secrets.inst.Hex}}", "PLAIN": "{{.Secrets.plain.Raw}}"},
				"files": map[string]string{
					"/etc/web/key.pem":   "{{.Workload.Key}}",
					"/etc/web/chain.pem": "{{.Workload.Chain}}",
					"/etc/web/cert.pem":  "{{.Secrets.cert.Cert}}",
				},
				"argv": []string{"/bin/web", "--instance={{.Workload.Instance}}"},
			},
			"exact":         map[string]any{"package": "exact"},
			"debuggable":    map[string]any{"package": "debug"},
			"limited":       map[string]any{"package": "signed", "max_activations": 1},
			"needs-upload":  map[string]any{"package": "signed", "max_activations": 1, "env": map[string]string{"U": "{{.Secrets.upload.Hex}}"}},
			"needs-filekey": map[string]any{"package": "signed", "max_activations": 1, "file_keys": []string{"fk"}},
		},
		"secrets": map[string]any{
			"shared": map[string]any{"type": "symmetric-key", "size": 128},
			"other":  map[string]any{"type": "symmetric-key", "size": 128},
			"inst":   map[string]any{"type": "symmetric-key", "size": 128, "per_instance": true},
			"cert":   map[string]any{"type": "certificate"},
			"upload": map[string]any{"type": "user-defined", "max_size": 16},
			"fk":     map[string]any{"type": "user-defined"},
			"plain":  map[string]any{"type": "plain", "value": "plain-value"},
		},
		"users": map[string]any{
			"admin":  map[string]any{"certificate": user(t, "admin").certPEM, "roles": []string{"manifest-admin", "writer"}},
			"reader": map[string]any{"certificate": user(t, "reader").certPEM, "roles": []string{"reader"}},
			"nobody": map[string]any{"certificate": user(t, "nobody").certPEM},
		},
		"roles": map[string]any{
			"manifest-admin": map[string]any{"resource": "manifest", "actions": []string{"update"}},
			"reader":         map[string]any{"resource": "secrets", "names": []string{"shared", "other", "inst", "cert", "upload", "plain"}, "actions": []string{"read"}},
			"writer":         map[string]any{"resource": "secrets", "names": []string{"upload", "fk"}, "actions": []string{"write"}},
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

func (f *fixture) setManifest(user string, raw []byte) *api.SetManifestResponse {
	f.t.Helper()
	r, err := f.c.SetManifest(f.t.Context(), as(f.t, user), raw)
	if err != nil {
		f.t.Fatalf("SetManifest: %v", err)
	}
	return r
}

// request is an activation request under construction.
type request struct {
	req      *api.ActivationRequest
	key      *ecdsa.PrivateKey
	spki     []byte
	exporter [32]byte
}

// newRequest makes an activation request whose quote (over body) binds its CSR key and a
// random exporter, as a launcher's does.
func newRequest(t *testing.T, workload, instance string, body sgx.ReportBody) *request {
	t.Helper()
	k, err := client.NewWorkloadKey(workload)
	if err != nil {
		t.Fatal(err)
	}
	r := &request{key: k.Key, spki: k.SPKI, req: &api.ActivationRequest{Workload: workload, Instance: instance, CSR: k.CSR}}
	rand.Read(r.exporter[:])
	r.req.Quote = quote(t, body, attest.ActivationReportData(k.SPKI, r.exporter))
	return r
}

func quote(t *testing.T, body sgx.ReportBody, rd [64]byte) []byte {
	t.Helper()
	q, err := (&attest.SimIssuer{Platform: platform, Body: body}).Quote(t.Context(), rd)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (f *fixture) activate(r *request) (*api.ActivationResponse, error) {
	return f.c.Activate(f.t.Context(), r.req, r.exporter)
}

func (f *fixture) mustActivate(workload, instance string) *api.ActivationResponse {
	f.t.Helper()
	resp, err := f.activate(newRequest(f.t, workload, instance, goodBody()))
	if err != nil {
		f.t.Fatalf("activate %s/%s: %v", workload, instance, err)
	}
	return resp
}

// wantError requires err to be a core *Error with code whose message holds every want.
func wantError(t *testing.T, err error, code string, want ...string) {
	t.Helper()
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %v (%T); want a *core.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Errorf("error code %s (%q), want %s", e.Code, e.Message, code)
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("error %q does not say %q", e.Message, w)
		}
	}
}

// counter returns the value of a counter or gauge in the fixture's registry.
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
