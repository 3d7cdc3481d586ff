package launcher

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps cloister-launch small and static: it runs in every confidential
// container, so it must not pull in the CLI framework, metrics, image or storage code, or the
// Coordinator.
func TestDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "github.com/cloister-dev/cloister/cmd/cloister-launch")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // how it is built: static
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/spf13/",
		"github.com/prometheus/",
		"github.com/google/go-containerregistry",
		"go.etcd.io/bbolt",
		"github.com/cloister-dev/cloister/coordinator",
		"github.com/cloister-dev/cloister/internal/cli",
		"github.com/cloister-dev/cloister/image",
		"github.com/cloister-dev/cloister/store",
		"github.com/cloister-dev/cloister/manifest",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("cloister-launch depends on %s", dep)
			}
		}
	}
}
