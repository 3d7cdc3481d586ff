package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func TestReportData(t *testing.T) {
	spki := []byte("a public key")
	nonce := [32]byte{1, 2, 3}
	head := [32]byte{9, 8, 7}
	rd := attest.CoordinatorReportData(spki, nonce, 42, head)
	h := sha256.Sum256(spki)
	want := sha256.Sum256(slices.Concat([]byte("cloister-coordinator-report-v2\x00"), h[:], []byte{0, 0, 0, 0, 0, 0, 0, 42}, head[:]))
	if !bytes.Equal(rd[:32], want[:]) || !bytes.Equal(rd[32:], nonce[:]) {
		t.Fatalf("CoordinatorReportData = %x; want SHA-256(prefix ‖ SHA-256(spki) ‖ seq ‖ head) ‖ nonce", rd)
	}
	for _, other := range [][64]byte{
		attest.CoordinatorReportData(spki, nonce, 43, head),
		attest.CoordinatorReportData(spki, nonce, 42, [32]byte{9, 8, 6}),
		attest.CoordinatorReportData([]byte("another key"), nonce, 42, head),
	} {
		if other == rd {
			t.Fatal("CoordinatorReportData does not bind every input")
		}
	}
	rd = attest.ActivationReportData(spki, nonce)
	if !bytes.Equal(rd[:32], h[:]) || !bytes.Equal(rd[32:], nonce[:]) {
		t.Fatalf("ActivationReportData = %x; want SHA-256(spki) ‖ exporter", rd)
	}
}

// TestEpochReportData: the shared quote's report data binds the key, the epoch and the head,
// under its own prefix, and is never a per-nonce quote's report data.
func TestEpochReportData(t *testing.T) {
	spki := []byte("a public key")
	head := [32]byte{9, 8, 7}
	rd := attest.CoordinatorEpochReportData(spki, 29_000_000, 42, head)
	h := sha256.Sum256(spki)
	want := sha256.Sum256(slices.Concat([]byte("cloister-coordinator-epoch-v1\x00"), h[:],
		[]byte{0, 0, 0, 0, 0x01, 0xba, 0x81, 0x40}, []byte{0, 0, 0, 0, 0, 0, 0, 42}, head[:]))
	if !bytes.Equal(rd[:32], want[:]) || [32]byte(rd[32:]) != [32]byte{} {
		t.Fatalf("CoordinatorEpochReportData = %x; want SHA-256(prefix ‖ SHA-256(spki) ‖ epoch ‖ seq ‖ head) ‖ zeros", rd)
	}
	for _, other := range [][64]byte{
		attest.CoordinatorEpochReportData(spki, 29_000_001, 42, head),
		attest.CoordinatorEpochReportData(spki, 29_000_000, 43, head),
		attest.CoordinatorEpochReportData(spki, 29_000_000, 42, [32]byte{9, 8, 6}),
		attest.CoordinatorEpochReportData([]byte("another key"), 29_000_000, 42, head),
		attest.CoordinatorReportData(spki, [32]byte{}, 42, head),
	} {
		if other == rd {
			t.Fatal("CoordinatorEpochReportData does not bind every input, or equals a per-nonce report data")
		}
	}
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(-5, 0), 0},
		{time.Unix(59, 999), 0},
		{time.Unix(60, 0), 1},
		{time.Unix(1_740_000_000, 0), 29_000_000},
	} {
		if got := attest.EpochAt(tc.at); got != tc.want {
			t.Errorf("EpochAt(%v) = %d, want %d", tc.at.Unix(), got, tc.want)
		}
	}
}

// TestCollateralWireForm sends real Intel collateral through the wire form and verifies a real
// quote with what comes out: the signed bytes survive exactly.
func TestCollateralWireForm(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		if v.Expected.TCBStatus == nil {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			col, err := verify.LoadCollateral(v.Dir)
			if err != nil {
				t.Fatal(err)
			}
			wire := attest.EncodeCollateral(col)
			back, err := attest.DecodeCollateral(&wire)
			if err != nil {
				t.Fatal(err)
			}
			res, err := verify.New(verify.IntelRoot()).Verify(v.File(t, "quote"), back, v.VerificationTime)
			if err != nil {
				t.Fatalf("verify with decoded collateral: %v", err)
			}
			if string(res.Platform.TCBStatus) != *v.Expected.TCBStatus {
				t.Fatalf("TCB status %s, want %s", res.Platform.TCBStatus, *v.Expected.TCBStatus)
			}
		})
	}
	for name, wire := range map[string]api.Collateral{
		"tcb_info":              {TCBInfo: []byte("{")},
		"qe_identity":           {QEIdentity: []byte("[]")},
		"tcb_info_issuer_chain": {TCBInfoIssuerChain: "not PEM"},
		"pck_crl":               {PCKCRL: []byte{0x30, 0x01}},
	} {
		if _, err := attest.DecodeCollateral(&wire); err == nil || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("bad %s: err = %v, want one naming %s", name, err, name)
		}
	}
}

func TestSimIssuerAndVerifier(t *testing.T) {
	p, err := sim.Create(filepath.Join(t.TempDir(), "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	col, err := verify.LoadCollateral(p.CollateralDir())
	if err != nil {
		t.Fatal(err)
	}
	iss := &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody([32]byte{9}, [32]byte{8}, 3, 4)}
	rd := [64]byte{1, 2, 3}
	q, err := iss.Quote(t.Context(), rd)
	if err != nil {
		t.Fatal(err)
	}
	v := attest.NewVerifier(verify.New(p.Root()), attest.StaticCollateral{C: col})
	res, got, err := v.Verify(t.Context(), q, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got != col || res.Enclave.ReportData != rd || res.Enclave.MREnclave != ([32]byte{9}) || res.Enclave.ISVSVN != 4 || res.Enclave.Debug {
		t.Fatalf("result %+v", res.Enclave)
	}
	// The wrong root: the PCK chain fails before any collateral is looked up.
	looked := false
	v = attest.NewVerifier(verify.New(verify.IntelRoot()), sourceFunc(func() { looked = true }))
	if _, _, err := v.Verify(t.Context(), q, time.Now()); err == nil || looked {
		t.Fatalf("simulated quote against Intel's root: err %v, collateral looked up %v", err, looked)
	}
}

type sourceFunc func()

func (f sourceFunc) Collateral(context.Context, [6]byte, sgx.PCKCAType) (*verify.Collateral, error) {
	f()
	return nil, os.ErrNotExist
}

// TestGramineIssuer drives the issuer against a directory laid out like /dev/attestation.
func TestGramineIssuer(t *testing.T) {
	dir := t.TempDir()
	g := &attest.GramineIssuer{Dir: dir}
	if g.Available() {
		t.Fatal("Available without a quote file")
	}
	os.WriteFile(filepath.Join(dir, "attestation_type"), []byte("dcap\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "user_report_data"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "quote"), []byte("quote bytes"), 0o644)
	if !g.Available() {
		t.Fatal("not Available with a quote file")
	}
	rd := [64]byte{7}
	q, err := g.Quote(t.Context(), rd)
	if err != nil || string(q) != "quote bytes" {
		t.Fatalf("Quote = %q, %v", q, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "user_report_data")); !bytes.Equal(b, rd[:]) {
		t.Fatalf("user_report_data = %x, want %x", b, rd)
	}
	os.WriteFile(filepath.Join(dir, "attestation_type"), []byte("epid"), 0o644)
	if _, err := g.Quote(t.Context(), rd); err == nil || !strings.Contains(err.Error(), `"epid"; expected dcap`) {
		t.Fatalf("epid: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "attestation_type"), []byte("dcap"), 0o644)
	os.WriteFile(filepath.Join(dir, "quote"), nil, 0o644)
	if _, err := g.Quote(t.Context(), rd); err == nil || !strings.Contains(err.Error(), "0 bytes") {
		t.Fatalf("empty quote: err = %v", err)
	}
}
