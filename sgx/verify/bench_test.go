package verify_test

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func phala(b *testing.B) (*dcaptest.Vector, []byte, *verify.Collateral) {
	b.Helper()
	for _, v := range dcaptest.Load(b) {
		if v.Name == "phala-processor-config-swhardening" {
			return v, v.File(b, "quote"), loadCollateral(b, v)
		}
	}
	b.Fatal("phala vector not found")
	return nil, nil, nil
}

// BenchmarkVerifyCached verifies the phala quote with a warm Verifier: what remains is parsing
// the quote, hashing for the cache keys, the quote signature and the time checks.
func BenchmarkVerifyCached(b *testing.B) {
	v, quote, col := phala(b)
	ver := verify.New(verify.IntelRoot())
	if _, err := ver.Verify(quote, col, v.VerificationTime); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ver.Verify(quote, col, v.VerificationTime); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold verifies the phala quote with a new Verifier each time: every chain,
// CRL, collateral and QE report signature is checked.
func BenchmarkVerifyCold(b *testing.B) {
	v, quote, col := phala(b)
	root := verify.IntelRoot()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verify.New(root).Verify(quote, col, v.VerificationTime); err != nil {
			b.Fatal(err)
		}
	}
}
