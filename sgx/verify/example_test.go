package verify_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func ExampleVerifier_Verify() {
	dir := filepath.Join(dcaptest.Root(), "phala-processor-config-swhardening")
	quote, err := os.ReadFile(filepath.Join(dir, "quote.bin"))
	if err != nil {
		panic(err)
	}
	col, err := verify.LoadCollateral(dir)
	if err != nil {
		panic(err)
	}
	v := verify.New(verify.IntelRoot())
	res, err := v.Verify(quote, col, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Platform.TCBStatus, res.Platform.AdvisoryIDs)

	policy := verify.Policy{MREnclave: [][32]byte{res.Enclave.MREnclave}}
	fmt.Println(policy.Check(res))
	// Output:
	// ConfigurationAndSWHardeningNeeded [INTEL-SA-00289 INTEL-SA-00615]
	// TCB status ConfigurationAndSWHardeningNeeded not accepted; expected one of [UpToDate, SWHardeningNeeded]
}
