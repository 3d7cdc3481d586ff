package pcs_test

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies checks that the package depends only on the standard library, golang.org/x
// packages and the sgx packages below it (docs/architecture.md: imports point down).
func TestDependencies(t *testing.T) {
	deptest.Transitive(t, "github.com/cloister-dev/cloister/sgx/pcs", "github.com/cloister-dev/cloister/sgx", "github.com/cloister-dev/cloister/sgx/verify", "golang.org/x/")
}
