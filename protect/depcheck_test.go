package protect

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps the package importable by the small static launcher: the standard
// library only.
func TestDependencies(t *testing.T) {
	deptest.Transitive(t, "github.com/cloister-dev/cloister/protect")
}
