package attest

import (
	"context"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// CollateralSource provides the Intel collateral for a platform, identified by the FMSPC and
// PCK CA type of its PCK certificate.
type CollateralSource interface {
	Collateral(ctx context.Context, fmspc [6]byte, ca sgx.PCKCAType) (*verify.Collateral, error)
}

// StaticCollateral serves one collateral set for every platform: a simulated platform's, or a
// directory an operator provides.
type StaticCollateral struct{ C *verify.Collateral }

var _ CollateralSource = StaticCollateral{}

// Collateral implements [CollateralSource].
func (s StaticCollateral) Collateral(context.Context, [6]byte, sgx.PCKCAType) (*verify.Collateral, error) {
	return s.C, nil
}

// Verifier verifies SGX quotes with collateral from a source. It is safe for concurrent use.
type Verifier struct {
	v      *verify.Verifier
	source CollateralSource
}

// NewVerifier returns a Verifier that pins v's root and gets collateral from source.
func NewVerifier(v *verify.Verifier, source CollateralSource) *Verifier {
	return &Verifier{v: v, source: source}
}

// Verify parses and verifies quote at instant at, with the collateral the source has for its
// platform, and returns that collateral too. The result is non-nil whenever the quote parsed. It
// applies no policy: callers check the result with a [verify.Policy].
func (v *Verifier) Verify(ctx context.Context, quote []byte, at time.Time) (*verify.Result, *verify.Collateral, error) {
	return v.v.VerifyFor(quote, func(fmspc [6]byte, ca sgx.PCKCAType) (*verify.Collateral, error) {
		return v.source.Collateral(ctx, fmspc, ca)
	}, at)
}
