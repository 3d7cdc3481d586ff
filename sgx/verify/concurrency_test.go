package verify_test

import (
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// TestConcurrentVerify shares one Verifier with tiny caches (so entries are evicted while in
// use) between goroutines verifying every vector; run with -race.
func TestConcurrentVerify(t *testing.T) {
	ver := verify.New(verify.IntelRoot(), verify.WithCacheSize(4), verify.WithCollateralCacheSize(2))
	type job struct {
		v     *dcaptest.Vector
		quote []byte
		col   *verify.Collateral
	}
	var jobs []job
	for _, v := range dcaptest.Load(t) {
		jobs = append(jobs, job{v, v.File(t, "quote"), loadCollateral(t, v)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				j := jobs[(g+i)%len(jobs)]
				res, err := ver.Verify(j.quote, j.col, j.v.VerificationTime)
				if j.v.Expected.TCBStatus == nil {
					if checkOf(err) != verify.CheckCollateral {
						t.Errorf("%s: %v, want a missing-collateral error", j.v.Name, err)
					}
					continue
				}
				if err != nil || string(res.Platform.TCBStatus) != *j.v.Expected.TCBStatus {
					t.Errorf("%s: %v %q, want %s", j.v.Name, err, res.Platform.TCBStatus, *j.v.Expected.TCBStatus)
				}
			}
		})
	}
	wg.Wait()
}
