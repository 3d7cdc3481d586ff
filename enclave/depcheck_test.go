package enclave

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps the package importable by the small static launcher: outside the
// standard library it may import only protect.
func TestDependencies(t *testing.T) {
	deptest.Transitive(t, "github.com/cloister-dev/cloister/enclave", "github.com/cloister-dev/cloister/protect", "github.com/cloister-dev/cloister/internal/gobuildid")
}
