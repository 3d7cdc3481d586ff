package sim

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// TestLoadForQuotes: a platform loaded for quotes makes quotes that verify against the
// platform's collateral and carry the same QE report and PCK chain as the full platform's;
// its collateral keys are loaded when collateral is written.
func TestLoadForQuotes(t *testing.T) {
	p := create(t, Options{CAType: sgx.PCKCAPlatform})
	l, err := LoadForQuotes(p.Dir())
	if err != nil {
		t.Fatalf("LoadForQuotes: %v", err)
	}
	if !l.Root().Equal(p.Root()) || l.FMSPC() != p.FMSPC() || l.QEIdentity() != p.QEIdentity() {
		t.Error("platform loaded for quotes differs from the created one")
	}
	if l.keys.root != nil || l.keys.tcbSigning != nil || l.certs.tcbSigning != nil {
		t.Error("LoadForQuotes loaded the collateral signers")
	}
	// Everything but the QE report's random signature is the full platform's.
	const sigStart, sigEnd = quoteSigOffset + sgx.SignatureSize + 64 + sgx.ReportBodySize, quoteSigOffset + sgx.SignatureSize + 64 + sgx.ReportBodySize + sgx.SignatureSize
	if !slices.Equal(l.quoteTemplate[:sigStart], p.quoteTemplate[:sigStart]) || !slices.Equal(l.quoteTemplate[sigEnd:], p.quoteTemplate[sigEnd:]) {
		t.Error("the quote template of LoadForQuotes differs from the full platform's beyond the QE report signature")
	}
	q, err := l.Quote(testBody())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.New(p.Root()).Verify(q, loadCollateral(t, p.CollateralDir()), verifyAt); err != nil {
		t.Errorf("quote of a platform loaded for quotes: %v", err)
	}

	// Collateral written by it verifies the full platform's quotes.
	dir := t.TempDir()
	if err := l.WriteCollateral(dir, CollateralOptions{IssueDate: testNow}); err != nil {
		t.Fatalf("WriteCollateral: %v", err)
	}
	q, err = p.Quote(testBody())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.New(p.Root()).Verify(q, loadCollateral(t, dir), verifyAt); err != nil {
		t.Errorf("quote against the collateral of a platform loaded for quotes: %v", err)
	}
}

// TestLoadForQuotesChecks: what LoadForQuotes reads it checks as Load does, and what it leaves
// out is checked when collateral is written.
func TestLoadForQuotesChecks(t *testing.T) {
	other := create(t, Options{})
	p := create(t, Options{})
	copyFile := func(name string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(other.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.Dir(), name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("private/tcb_signing_key.pem")
	l, err := LoadForQuotes(p.Dir())
	if err != nil {
		t.Fatalf("LoadForQuotes with a wrong TCB Signing key (which it does not read): %v", err)
	}
	err = l.WriteCollateral(t.TempDir(), CollateralOptions{IssueDate: testNow})
	if err == nil || !strings.Contains(err.Error(), "private/tcb_signing_key.pem: key does not belong to certificate") {
		t.Errorf("WriteCollateral with a wrong TCB Signing key = %v; want it refused", err)
	}

	copyFile("private/attestation_key.pem") // a valid key, but not the platform's: no certificate binds it
	copyFile("private/pck_key.pem")
	if _, err := LoadForQuotes(p.Dir()); err == nil || !strings.Contains(err.Error(), "private/pck_key.pem: key does not belong to certificate") {
		t.Errorf("LoadForQuotes with another platform's PCK key = %v; want it refused", err)
	}
}

// BenchmarkLoad: what a launcher pays at every start to load its simulated platform.
func BenchmarkLoad(b *testing.B) {
	p := create(b, Options{})
	for _, bc := range []struct {
		name string
		load func(string) (*Platform, error)
	}{{"all", Load}, {"quotes", LoadForQuotes}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.load(p.Dir()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
