package controlplane

import (
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
)

// Built once per test run by TestMain (not with -short).
var (
	cloisterBin string // cloister: the Coordinator, the CLI and `cloister launch`
	launchBin   string // cloister-launch, built with CGO_ENABLED=0
	signer      *rsa.PrivateKey
	otherSigner *rsa.PrivateKey // an enclave signer the deployment does not know
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cloister-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cloisterBin = filepath.Join(dir, "cloister")
	launchBin = filepath.Join(dir, "cloister-launch")
	errs := make([]error, 4)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = goBuild(cloisterBin, "cmd/cloister", nil) })
	wg.Go(func() { errs[1] = goBuild(launchBin, "cmd/cloister-launch", []string{"CGO_ENABLED=0"}) })
	// RSA-3072 keys with e = 3 take about a second each: make them while the compiler runs.
	wg.Go(func() { signer, errs[2] = enclave.GenerateKey() })
	wg.Go(func() { otherSigner, errs[3] = enclave.GenerateKey() })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	return m.Run()
}

func goBuild(out, pkg string, env []string) error {
	cmd := exec.Command("go", "build", "-o", out, "github.com/cloister-dev/cloister/"+pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
