package controlplane

import (
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// Made once per test run by TestMain (not with -short).
var (
	signer      *rsa.PrivateKey
	otherSigner *rsa.PrivateKey // an enclave signer the deployment does not know
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	// RSA-3072 keys with e = 3 take about a second each: make them while the compiler runs.
	wg.Go(func() { _, errs[0] = e2etest.Build() })
	wg.Go(func() { signer, errs[1] = enclave.GenerateKey() })
	wg.Go(func() { otherSigner, errs[2] = enclave.GenerateKey() })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
