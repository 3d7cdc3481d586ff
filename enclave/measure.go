package enclave

import "crypto/sha256"

// Domain tags of the simulated measurements.
const (
	// SimMRENCLAVETag is the tag of a workload's simulated MRENCLAVE.
	SimMRENCLAVETag = "cloister-sim-mrenclave-v1"
	// SimCoordinatorTag is the tag of the simulated Coordinator's MRENCLAVE,
	// taken over the SHA-256 of its own binary.
	SimCoordinatorTag = "cloister-sim-coordinator-v1"
)

// SimMeasurement returns SHA-256(tag ‖ 0x00 ‖ parts[0] ‖ parts[1] ‖ …), the
// simulated measurement of something identified by parts under the domain
// tag. The parts are concatenated without lengths, so callers pass
// fixed-size values (digests) and tags without NUL bytes.
func SimMeasurement(tag string, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(tag))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// SimMRENCLAVE returns the simulated MRENCLAVE of a workload:
// SHA-256("cloister-sim-mrenclave-v1" ‖ 0x00 ‖ launcherSHA256 ‖
// SHA-256(manifestRaw)), where launcherSHA256 is the SHA-256 of the launcher
// binary and manifestRaw the signed manifest bytes ([Signed.Raw]).
func SimMRENCLAVE(launcherSHA256 [32]byte, manifestRaw []byte) [32]byte {
	m := sha256.Sum256(manifestRaw)
	return SimMeasurement(SimMRENCLAVETag, launcherSHA256[:], m[:])
}
