// Command cloister-launch is the entrypoint of a confidential container: it attests,
// activates with the Coordinator, and only then starts the original application, as its
// child (staying as the container's init and renewing the workload certificate) or, for a
// workload with exec, by exec. See package launcher. It is configured by CLOISTER_*
// environment variables.
//
// Build it static, and stripped, a third smaller (as the README's go install line and the e2e
// tests do):
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o cloister-launch ./cmd/cloister-launch
package main

import (
	"context"
	"os"

	"github.com/cloister-dev/cloister/launcher"
)

func main() {
	os.Exit(launcher.Main(context.Background(), os.Getenv, os.Environ(), os.Stderr))
}
