package verify_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies checks that the package imports only the standard library,
// golang.org/x/crypto and the sgx format package (docs/architecture.md).
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{"github.com/cloister-dev/cloister/sgx", "github.com/cloister-dev/cloister/sgx/verify", "golang.org/x/crypto/"}
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		if std == "true" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || path == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(path, a))
		}
		if !ok {
			t.Errorf("sgx/verify depends on %s; allowed: the standard library, golang.org/x/crypto, the sgx package", path)
		}
	}
}
