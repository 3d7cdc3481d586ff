package launcher

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestDependencies keeps cloister-launch small and static: it runs in every confidential
// container, so it must not pull in the CLI framework, metrics, image or storage code, or the
// Coordinator; nor net/http (with HTTP/2, gzip, MIME and IDNA tables, a third of its size):
// it talks HTTP/1.1 through client/attested; nor compress (debug/elf would link it: the
// launcher reads its Go build ID with package enclave); nor
// regexp, whose patterns would be compiled at every start (the launcher and package recovery,
// which it links through package api, write their few patterns out).
func TestDependencies(t *testing.T) {
	deptest.Forbidden(t, "github.com/cloister-dev/cloister/cmd/cloister-launch",
		"github.com/spf13/", "github.com/prometheus/", "github.com/google/go-containerregistry/", "go.etcd.io/bbolt",
		"net/http", "compress/", "mime", "regexp", "github.com/cloister-dev/cloister/coordinator/", "github.com/cloister-dev/cloister/internal/cli", "github.com/cloister-dev/cloister/image", "github.com/cloister-dev/cloister/store", "github.com/cloister-dev/cloister/manifest")
}
