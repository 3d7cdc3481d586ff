package pcs_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// fakePCS is a PCS (API v4) or PCCS (API v3) on 127.0.0.1 serving the collateral files of one
// directory, with the paths, query parameters and header names of its API version.
type fakePCS struct {
	t       testing.TB
	version int
	srv     *httptest.Server

	mu       sync.Mutex
	files    map[string][]byte // collateral file name → content
	status   int               // when non-zero, every request is answered with it
	hits     map[string]int    // path → requests
	override func(w http.ResponseWriter, r *http.Request) bool
}

// newFakePCS starts a fake service of API version (3 or 4) serving dir.
func newFakePCS(t testing.TB, version int, dir string) *fakePCS {
	t.Helper()
	f := &fakePCS{t: t, version: version, hits: map[string]int{}}
	f.serve(dir)
	mux := http.NewServeMux()
	prefix := fmt.Sprintf("/sgx/certification/v%d", version)
	mux.HandleFunc("GET "+prefix+"/tcb", f.tcb)
	mux.HandleFunc("GET "+prefix+"/qe/identity", f.qeIdentity)
	mux.HandleFunc("GET "+prefix+"/pckcrl", f.pckCRL)
	mux.HandleFunc("GET "+prefix+"/rootcacrl", f.rootCACRL)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.Path]++
		status, override := f.status, f.override
		f.mu.Unlock()
		if status != 0 {
			http.Error(w, "PCCS: the service is failing on purpose", status)
			return
		}
		if override != nil && override(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// url returns the base URL of the certification API.
func (f *fakePCS) url() string {
	return fmt.Sprintf("%s/sgx/certification/v%d", f.srv.URL, f.version)
}

// serve makes f serve the collateral files of dir (absent files give 404).
func (f *fakePCS) serve(dir string) {
	f.t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"tcb_info.json", "tcb_info_issuer_chain.pem", "qe_identity.json",
		"qe_identity_issuer_chain.pem", "pck_crl.der", "pck_crl_issuer_chain.pem", "root_ca_crl.der"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			f.t.Fatal(err)
		}
		files[name] = b
	}
	if files["qe_identity_issuer_chain.pem"] == nil {
		files["qe_identity_issuer_chain.pem"] = files["tcb_info_issuer_chain.pem"]
	}
	f.mu.Lock()
	f.files = files
	f.mu.Unlock()
}

func (f *fakePCS) setStatus(status int) {
	f.mu.Lock()
	f.status = status
	f.mu.Unlock()
}

func (f *fakePCS) setOverride(o func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.override = o
	f.mu.Unlock()
}

func (f *fakePCS) remove(name string) {
	f.mu.Lock()
	delete(f.files, name)
	f.mu.Unlock()
}

// count returns the requests made for an endpoint ("tcb", "qe/identity", …).
func (f *fakePCS) count(endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[fmt.Sprintf("/sgx/certification/v%d/%s", f.version, endpoint)]
}

// total returns all requests made.
func (f *fakePCS) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.hits {
		n += c
	}
	return n
}

func (f *fakePCS) file(name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[name]
}

// setChain sets an issuer-chain header, URL-encoded as Intel does in v4 (%20 for a space) and
// with "+" for a space in v3, so that both decodings are exercised.
func (f *fakePCS) setChain(w http.ResponseWriter, name string, pem []byte) {
	if f.version == 3 {
		w.Header().Set(name, url.QueryEscape(string(pem)))
	} else {
		w.Header().Set(name, url.PathEscape(string(pem)))
	}
}

func (f *fakePCS) tcb(w http.ResponseWriter, r *http.Request) {
	body := f.file("tcb_info.json")
	if body == nil {
		http.NotFound(w, r)
		return
	}
	t, err := verify.ParseTCBInfo(body)
	if err != nil {
		f.t.Errorf("fake PCS: %v", err)
	}
	if !strings.EqualFold(r.URL.Query().Get("fmspc"), fmt.Sprintf("%X", t.FMSPC)) {
		http.Error(w, "no TCB Info for this FMSPC", http.StatusNotFound)
		return
	}
	name := "TCB-Info-Issuer-Chain"
	if f.version == 3 {
		name = "SGX-TCB-Info-Issuer-Chain"
	}
	f.setChain(w, name, f.file("tcb_info_issuer_chain.pem"))
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (f *fakePCS) qeIdentity(w http.ResponseWriter, r *http.Request) {
	body := f.file("qe_identity.json")
	if body == nil {
		http.NotFound(w, r)
		return
	}
	f.setChain(w, "SGX-Enclave-Identity-Issuer-Chain", f.file("qe_identity_issuer_chain.pem"))
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (f *fakePCS) pckCRL(w http.ResponseWriter, r *http.Request) {
	der, chainPEM := f.file("pck_crl.der"), f.file("pck_crl_issuer_chain.pem")
	if der == nil || chainPEM == nil {
		http.NotFound(w, r)
		return
	}
	chain, err := verify.ParseCertChain(chainPEM)
	if err != nil {
		f.t.Errorf("fake PCS: %v", err)
		return
	}
	ca, _ := sgx.PCKCATypeOf(chain[0].Subject.CommonName)
	q := r.URL.Query()
	if q.Get("ca") != string(ca) {
		http.Error(w, "no CRL for this CA", http.StatusNotFound)
		return
	}
	f.setChain(w, "SGX-PCK-CRL-Issuer-Chain", chainPEM)
	if f.version == 4 {
		if q.Get("encoding") != "der" {
			f.t.Errorf("fake PCS v4: pckcrl query %q; expected encoding=der", r.URL.RawQuery)
		}
		w.Write(der)
		return
	}
	w.Write(pemBlock("X509 CRL", der)) // v3 answers PEM
}

func (f *fakePCS) rootCACRL(w http.ResponseWriter, r *http.Request) {
	der := f.file("root_ca_crl.der")
	if der == nil {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(hex.EncodeToString(der))) // a PCCS answers hex
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// testClock is an injectable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// logBuffer collects log output of several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// t0 is the creation time of simulated platforms in tests.
var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// newPlatform creates a simulated platform at t0 whose collateral is valid for 30 days.
func newPlatform(t testing.TB, ca sgx.PCKCAType) *sim.Platform {
	t.Helper()
	p, err := sim.Create(filepath.Join(t.TempDir(), "platform"), sim.Options{
		Now: t0, CAType: ca, CollateralValidity: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// variant writes collateral of p issued at issue, valid for 30 days, with evaluation number
// eval, and returns its directory.
func variant(t testing.TB, p *sim.Platform, issue time.Time, eval int) string {
	t.Helper()
	dir := t.TempDir()
	err := p.WriteCollateral(dir, sim.CollateralOptions{
		IssueDate: issue, NextUpdate: issue.Add(30 * 24 * time.Hour), TCBEvaluationDataNumber: eval,
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// env is a provider against a fake service serving a simulated platform's collateral.
type env struct {
	plat  *sim.Platform
	pcs   *fakePCS
	clock *testClock
	logs  *logBuffer
	dir   string // cache directory
	prov  *pcs.Provider
}

func newEnv(t testing.TB, version int) *env {
	t.Helper()
	e := &env{plat: newPlatform(t, sgx.PCKCAProcessor), clock: &testClock{t: t0.Add(time.Hour)}, logs: &logBuffer{}}
	e.pcs = newFakePCS(t, version, e.plat.CollateralDir())
	e.dir = filepath.Join(t.TempDir(), "cache")
	e.prov = e.newProvider(t)
	return e
}

// newProvider returns a new provider on e's cache directory, as after a restart.
func (e *env) newProvider(t testing.TB) *pcs.Provider {
	t.Helper()
	c, err := pcs.NewClient(pcs.ClientConfig{BaseURL: e.pcs.url()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pcs.NewProvider(pcs.ProviderConfig{Client: c, Root: e.plat.Root(), Dir: e.dir},
		pcs.WithClock(e.clock.now), pcs.WithLogger(e.logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) collateral(t testing.TB) (*verify.Collateral, error) {
	t.Helper()
	return e.prov.Collateral(context.Background(), e.plat.FMSPC(), sgx.PCKCAProcessor)
}

func (e *env) mustCollateral(t testing.TB) *verify.Collateral {
	t.Helper()
	col, err := e.collateral(t)
	if err != nil {
		t.Fatalf("Collateral: %v\nlog:\n%s", err, e.logs)
	}
	return col
}
