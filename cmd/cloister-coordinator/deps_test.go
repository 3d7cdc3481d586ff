package main

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/deptest"
)

// TestNoHelm: the Coordinator image's binary is measured into its enclave and loaded into EPC
// at every start; the Helm SDK (and the chart it installs) belong to the cloister CLI only.
func TestNoHelm(t *testing.T) {
	deptest.Forbidden(t, "github.com/cloister-dev/cloister/cmd/cloister-coordinator",
		"helm.sh/", "github.com/cloister-dev/cloister/charts")
}
