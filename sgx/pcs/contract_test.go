package pcs_test

import (
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/sgx/pcs"
)

// The Coordinator consumes collateral through attest.CollateralSource.
var _ attest.CollateralSource = (*pcs.Provider)(nil)
