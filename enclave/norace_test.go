//go:build !race

package enclave

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
