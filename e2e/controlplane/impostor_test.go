package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// relay is an impostor Coordinator: it answers requests for the paths it relays (quotes) with
// the real Coordinator's answers, and others with 404, but serves TLS with its own key, and
// writes down every request it receives.
type relay struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string // method and path of every request
}

func newRelay(t *testing.T, realMesh string, paths ...string) *relay {
	t.Helper()
	r := &relay{}
	upstream := &http.Client{Timeout: e2etest.RunTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true},
	}}
	t.Cleanup(upstream.CloseIdleConnections)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got = append(r.got, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		if req.Method != "GET" || !slices.Contains(paths, req.URL.Path) {
			http.Error(w, "the relay only relays quotes", http.StatusNotFound)
			return
		}
		resp, err := upstream.Get("https://" + realMesh + req.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	// Its own certificate even claims to be the Coordinator's.
	r.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{impostorCert(t)}}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relay) addr() string { return strings.TrimPrefix(r.srv.URL, "https://") }

func (r *relay) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func impostorCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("urn:cloister:coordinator")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "Cloister Coordinator"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{uri},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// meshRequests counts the requests a Coordinator's workload API answered, by route.
func meshRequests(t *testing.T, c *e2etest.Coordinator) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for s, v := range c.Metrics(t) {
		if rest, ok := strings.CutPrefix(s, `cloister_api_requests_total{api="mesh",`); ok {
			i := strings.Index(rest, `route="`)
			out[strings.TrimSuffix(rest[i+len(`route="`):], `"}`)] += v
		}
	}
	return out
}

// TestImpostors starts launchers against three kinds of false Coordinator. Each launcher
// refuses (exit 1, the reason in its output), the program never runs, and nothing but the
// quote request (the shared quote's; a nonce quote's after it where there is no shared one)
// reaches the impostor.
func TestImpostors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	real := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)
	v, err := client.Verify(t.Context(), real.Addrs.Client, real.Expect())
	if err != nil {
		t.Fatalf("verify the real Coordinator: %v", err)
	}
	signerID := enclave.MRSigner(&signer.PublicKey)
	m := map[string]any{
		"packages":  map[string]any{"signed": map[string]any{"mrsigner": fmt.Sprintf("%x", signerID), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{"app": map[string]any{"package": "signed", "env": map[string]string{"INSTANCE": "{{.Workload.Instance}}"}}},
	}
	if _, err := client.New(real.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	a := e.newApp(t, "app", signer, nil)
	opts := func(instance, mesh string) launchOpts {
		return launchOpts{workload: "app", instance: instance, mesh: mesh, simDir: p.Dir()}
	}
	// Control: against the real Coordinator the same launch succeeds.
	e.mustLaunch(t, a, opts("control", real.Addrs.Mesh))

	t.Run("relays the real shared quote with its own TLS key", func(t *testing.T) {
		r := newRelay(t, real.Addrs.Mesh, api.PathQuoteEpoch, api.PathQuote)
		e.launchFails(t, a, opts("relayed", r.addr()),
			"coordinator at "+r.addr()+" failed verification",
			"the quote is about another certificate than the one this connection presented (a relayed quote?)")
		if got, want := r.requests(), []string{"GET " + api.PathQuoteEpoch}; !slices.Equal(got, want) {
			t.Errorf("the impostor received %q, want only %q", got, want)
		}
	})

	// An impostor that has no shared quote, as a Coordinator older than it: the launcher asks
	// for a quote over its nonce on the same connection, and refuses the relayed one.
	t.Run("relays the real nonce quote with its own TLS key", func(t *testing.T) {
		r := newRelay(t, real.Addrs.Mesh, api.PathQuote)
		e.launchFails(t, a, opts("relayed-nonce", r.addr()),
			"coordinator at "+r.addr()+" failed verification",
			"the quote is about another certificate than the one this connection presented (a relayed quote?)")
		if got, want := r.requests(), []string{"GET " + api.PathQuoteEpoch, "GET " + api.PathQuote}; !slices.Equal(got, want) {
			t.Errorf("the impostor received %q, want only %q", got, want)
		}
	})

	t.Run("a Coordinator on another simulated platform", func(t *testing.T) {
		elsewhere := e.NewPlatform(t, "platform-elsewhere")
		other := e.StartCoordinator(t, "coordinator-elsewhere", elsewhere, e.Path("data-elsewhere"), nil)
		e.launchFails(t, a, opts("elsewhere", other.Addrs.Mesh),
			"coordinator at "+other.Addrs.Mesh+" failed verification", "chain does not end in the pinned root key")
		if got, want := meshRequests(t, other), map[string]float64{"GET " + api.PathQuoteEpoch: 1}; !maps.Equal(got, want) {
			t.Errorf("the other Coordinator answered %v on its workload API, want only %v", got, want)
		}
		other.Stop(t)
	})

	t.Run("a Coordinator the enclave manifest does not name", func(t *testing.T) {
		mr := e.coordinatorMeasurement(t)
		wrongMR := sha256.Sum256([]byte("another Coordinator build"))
		wrongSigner := enclave.MRSigner(&otherSigner.PublicKey)
		for _, tc := range []struct {
			name  string
			coord enclave.Coordinator
			want  string
		}{{
			name:  "mrenclave",
			coord: enclave.Coordinator{MRENCLAVE: []enclave.Digest{wrongMR}},
			want:  fmt.Sprintf("mrenclave %x not accepted; expected one of [%x]", mr, wrongMR),
		}, {
			name:  "mrsigner",
			coord: enclave.Coordinator{MRSIGNER: wrongSigner, ISVProdID: attest.CoordinatorProdID},
			want:  fmt.Sprintf("mrsigner %x not accepted; expected %x", attest.SimCoordinatorSigner, wrongSigner),
		}, {
			name:  "min_isvsvn",
			coord: enclave.Coordinator{MRSIGNER: attest.SimCoordinatorSigner, ISVProdID: attest.CoordinatorProdID, MinISVSVN: attest.CoordinatorSVN + 1},
			want:  fmt.Sprintf("isvsvn %d not accepted; expected at least %d", attest.CoordinatorSVN, attest.CoordinatorSVN+1),
		}} {
			t.Run(tc.name, func(t *testing.T) {
				b := e.newApp(t, "expects-"+tc.name, signer, func(_ *app, m *enclave.Manifest) { m.Coordinator = &tc.coord })
				before := meshRequests(t, real)
				e.launchFails(t, b, opts("wrong-"+tc.name, real.Addrs.Mesh), "coordinator at "+real.Addrs.Mesh+" failed verification", tc.want)
				after := meshRequests(t, real)
				if after["GET "+api.PathQuoteEpoch] != before["GET "+api.PathQuoteEpoch]+1 || after["POST "+api.PathActivate] != before["POST "+api.PathActivate] {
					t.Errorf("workload API requests went from %v to %v; want one more quote request and nothing else", before, after)
				}
			})
		}
	})
	real.Stop(t)
}

// TestTCBStatusNotAccepted runs a Coordinator on a platform whose collateral says OutOfDate.
// A client that accepts OutOfDate for the Coordinator activates hand-made workloads: a package
// with the default TCB statuses refuses them, one that lists OutOfDate admits them.
func TestTCBStatusNotAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	if err := p.WriteCollateral(p.Dir(), sim.CollateralOptions{TCBStatus: verify.OutOfDate}); err != nil {
		t.Fatal(err)
	}
	co := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)

	_, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err == nil || !strings.Contains(err.Error(), "TCB status OutOfDate not accepted; expected one of [UpToDate, SWHardeningNeeded]") {
		t.Fatalf("a client with the default TCB statuses verified an OutOfDate Coordinator: %v", err)
	}
	expect := co.Expect()
	expect.TCBStatuses = []verify.TCBStatus{verify.OutOfDate}
	v, err := client.Verify(t.Context(), co.Addrs.Client, expect)
	if err != nil {
		t.Fatalf("verify the Coordinator accepting OutOfDate: %v", err)
	}
	if v.Result.Platform.TCBStatus != verify.OutOfDate {
		t.Fatalf("the Coordinator's TCB status is %s, want OutOfDate from the rewritten collateral", v.Result.Platform.TCBStatus)
	}
	signerID := enclave.MRSigner(&signer.PublicKey)
	pkg := func(statuses ...string) map[string]any {
		p := map[string]any{"mrsigner": fmt.Sprintf("%x", signerID), "isvprodid": 7, "min_isvsvn": 3}
		if statuses != nil {
			p["tcb_statuses"] = statuses
		}
		return p
	}
	m := map[string]any{
		"packages":  map[string]any{"strict": pkg(), "lenient": pkg("UpToDate", "OutOfDate")},
		"workloads": map[string]any{"strict": map[string]any{"package": "strict"}, "lenient": map[string]any{"package": "lenient"}},
	}
	if _, err := client.New(co.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	iss := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(sha256.Sum256([]byte("a workload")), signerID, 7, 3)}
	_, err = activateWith(t, co.Addrs.Mesh, expect, "strict", "s1", newCSR(t, "strict"), iss)
	wantRefusal(t, err, http.StatusForbidden, api.CodePolicy, `workload "strict" (package "strict")`,
		"TCB status OutOfDate not accepted; expected one of [UpToDate, SWHardeningNeeded]")
	if _, err := activateWith(t, co.Addrs.Mesh, expect, "lenient", "l1", newCSR(t, "lenient"), iss); err != nil {
		t.Errorf("a package that accepts OutOfDate refused the workload: %v", err)
	}
	// The launcher expects an up-to-date Coordinator and refuses this one.
	a := e.newApp(t, "app", signer, nil)
	e.launchFails(t, a, launchOpts{workload: "lenient", instance: "l2", mesh: co.Addrs.Mesh, simDir: p.Dir()},
		"failed verification", "TCB status OutOfDate not accepted")
	co.Stop(t)
}

// TestLauncherIsStatic checks that cloister-launch, built with CGO_ENABLED=0, needs no dynamic
// loader or shared library: it runs in any image.
func TestLauncherIsStatic(t *testing.T) {
	e2etest.SkipShort(t)
	f, err := elf.Open(e2etest.Bins(t).Launcher)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("cloister-launch has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("cloister-launch imports shared libraries %q (%v); want none", libs, err)
	}
}
