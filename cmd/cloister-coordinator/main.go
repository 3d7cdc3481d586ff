// Command cloister-coordinator is the binary of the Coordinator image (`cloister image
// coordinator`): the commands of cloister that run in a cluster, `coordinator` and `injector`,
// and nothing else. The image's enclave measures it, so it stays small: it does not link the
// Helm SDK that `cloister install` needs (a test checks).
//
// Build it static:
//
//	CGO_ENABLED=0 go build -trimpath -o cloister-coordinator ./cmd/cloister-coordinator
package main

import (
	"os"

	"github.com/cloister-dev/cloister/internal/cli"
)

func main() {
	os.Exit(cli.CoordinatorMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
