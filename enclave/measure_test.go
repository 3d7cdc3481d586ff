package enclave

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The expected values come from Python's hashlib (see docs/formats.md for
// the definitions), not from this package.
func TestSimMeasurement(t *testing.T) {
	launcher := sha256.Sum256([]byte("launcher"))
	got := SimMRENCLAVE(launcher, []byte(`{"version":1}`))
	if want := "2ff61a0c20666f7f036c227605de387f54949db32e56c2dba3fe89d3549e1b9c"; hex.EncodeToString(got[:]) != want {
		t.Errorf("SimMRENCLAVE = %x, want %s", got, want)
	}
	coord := sha256.Sum256([]byte("coordinator"))
	got = SimMeasurement(SimCoordinatorTag, coord[:])
	if want := "0582ddfb435ad8a40aaf1b63f404499ad1c88a015a6e3abe866e74e178dab3c0"; hex.EncodeToString(got[:]) != want {
		t.Errorf("SimMeasurement(coordinator) = %x, want %s", got, want)
	}
	if SimMeasurement("a", []byte("b")) == SimMeasurement("ab") {
		t.Errorf("the tag is not separated from the parts")
	}
}
