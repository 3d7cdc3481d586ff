package manifest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package's own imports to the standard library and the SGX
// verifier's TCB status vocabulary (docs/architecture.md: imports point down the package
// list). Test-only modules such as the JSON Schema validator must not leak into it.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const allowed = "github.com/cloister-dev/cloister/sgx/verify"
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list reported no imports")
	}
	for _, imp := range imports {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") && imp != allowed {
			t.Errorf("manifest imports %s; allowed: the standard library and %s", imp, allowed)
		}
	}
}
