package image

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies keeps the converter below the launcher, the Coordinator
// and the CLI in the import graph (docs/architecture.md): it may use the
// packages it builds on, go-containerregistry and the compression and sync
// libraries, nothing above it.
func TestDependencies(t *testing.T) {
	allowed := []string{
		"github.com/cloister-dev/cloister/enclave",
		"github.com/cloister-dev/cloister/protect",
		"github.com/google/go-containerregistry/",
		"github.com/klauspost/compress/",
		"golang.org/x/sync/errgroup",
	}
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if !strings.Contains(first, ".") {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || p == a || strings.HasSuffix(a, "/") && strings.HasPrefix(p, a)
			}
			if !ok {
				t.Errorf("%s imports %s; allowed outside the standard library: %v", name, p, allowed)
			}
		}
	}
}
