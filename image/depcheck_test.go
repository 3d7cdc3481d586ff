package image

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps the converter's own imports to the standard library, the Cloister
// packages it builds on, go-containerregistry and the compression and sync libraries, nothing
// above it.
func TestDependencies(t *testing.T) {
	deptest.Direct(t, "github.com/cloister-dev/cloister/image",
		"github.com/cloister-dev/cloister/enclave", "github.com/cloister-dev/cloister/protect", "github.com/cloister-dev/cloister/internal/gobuildid",
		"github.com/google/go-containerregistry/", "github.com/klauspost/compress/", "golang.org/x/sync/errgroup")
}
