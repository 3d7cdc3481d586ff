package verify_test

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies checks that the package depends only on the standard library,
// golang.org/x/crypto and the sgx format package (docs/architecture.md).
func TestDependencies(t *testing.T) {
	deptest.Transitive(t, "github.com/cloister-dev/cloister/sgx/verify", "github.com/cloister-dev/cloister/sgx", "golang.org/x/crypto/")
}
