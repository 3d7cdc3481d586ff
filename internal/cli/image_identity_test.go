package cli

import (
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/attest"
)

// --coordinator-mrenclave alone must pin the Coordinator's measurement; the product ID's
// default must not turn it into a signer-less signer policy.
func TestCoordinatorFlagIdentity(t *testing.T) {
	mr := strings.Repeat("ab", 32)
	c, err := coordinatorFlagIdentity(&imageConvertFlags{coordMREnclave: []string{mr}, coordProdID: attest.CoordinatorProdID})
	if err != nil || c == nil || len(c.MRENCLAVE) != 1 || c.ISVProdID != 0 || c.MinISVSVN != 0 {
		t.Fatalf("MRENCLAVE only: %+v, %v", c, err)
	}
	c, err = coordinatorFlagIdentity(&imageConvertFlags{coordMRSigner: mr, coordProdID: 7, coordMinSVN: 2})
	if err != nil || c.ISVProdID != 7 || c.MinISVSVN != 2 {
		t.Errorf("signer: %+v, %v", c, err)
	}
	if _, err := coordinatorFlagIdentity(&imageConvertFlags{coordMREnclave: []string{mr}, coordProdID: attest.CoordinatorProdID, coordMinSVN: 3}); err == nil {
		t.Errorf("--coordinator-min-isvsvn without a signer was accepted")
	}
}

func TestWorkloadProdIDNotCoordinators(t *testing.T) {
	if err := checkWorkloadProdID(attest.CoordinatorProdID); err == nil || !strings.Contains(err.Error(), "the Coordinator's product ID") {
		t.Errorf("checkWorkloadProdID(Coordinator's) = %v", err)
	}
	if err := checkWorkloadProdID(1); err != nil {
		t.Errorf("checkWorkloadProdID(1) = %v", err)
	}
}
