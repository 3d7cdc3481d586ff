package pcs_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies checks that the package imports only the standard library, golang.org/x
// packages and the sgx packages below it (docs/architecture.md: imports point down).
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/cloister-dev/cloister/sgx":        true,
		"github.com/cloister-dev/cloister/sgx/verify": true,
		"github.com/cloister-dev/cloister/sgx/pcs":    true,
	}
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		if std == "true" || allowed[path] || strings.HasPrefix(path, "golang.org/x/") {
			continue
		}
		t.Errorf("sgx/pcs depends on %s; allowed: the standard library, golang.org/x, sgx and sgx/verify", path)
	}
}
