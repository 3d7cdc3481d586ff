package manifest

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps the package's own imports to the standard library and the SGX
// verifier's TCB status vocabulary (docs/architecture.md: imports point down the package map).
func TestDependencies(t *testing.T) {
	deptest.Direct(t, "github.com/cloister-dev/cloister/manifest", "github.com/cloister-dev/cloister/sgx/verify")
}
