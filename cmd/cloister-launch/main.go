// Command cloister-launch is the entrypoint of a confidential container: it attests,
// activates with the Coordinator, and only then execs the original application. See package
// launcher. It is configured by CLOISTER_* environment variables.
package main

import (
	"context"
	"os"

	"github.com/cloister-dev/cloister/launcher"
)

func main() {
	os.Exit(launcher.Main(context.Background(), os.Getenv, os.Environ(), os.Stderr))
}
