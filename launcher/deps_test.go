package launcher

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps cloister-launch small and static: it runs in every confidential
// container, so it must not pull in the CLI framework, metrics, image or storage code, or the
// Coordinator.
func TestDependencies(t *testing.T) {
	deptest.Forbidden(t, "github.com/cloister-dev/cloister/cmd/cloister-launch",
		"github.com/spf13/", "github.com/prometheus/", "github.com/google/go-containerregistry/", "go.etcd.io/bbolt",
		"github.com/cloister-dev/cloister/coordinator/", "github.com/cloister-dev/cloister/internal/cli", "github.com/cloister-dev/cloister/image", "github.com/cloister-dev/cloister/store", "github.com/cloister-dev/cloister/manifest")
}
