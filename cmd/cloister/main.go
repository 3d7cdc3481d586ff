// Command cloister is the Cloister CLI and Coordinator daemon.
package main

import (
	"os"

	"github.com/cloister-dev/cloister/charts"
	"github.com/cloister-dev/cloister/internal/cli"
)

func main() {
	os.Exit(cli.MainWithHelm(charts.Releases{}, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
