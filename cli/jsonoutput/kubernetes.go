package jsonoutput

// Check is printed by `cloister check`: whether the Cloister installation in a namespace is
// ready, part by part.
type Check struct {
	// Namespace is the namespace checked.
	Namespace string `json:"namespace"`
	// Ready is true when every part is ready.
	Ready bool `json:"ready"`
	// Simulation is true when the Coordinator runs on a simulated platform (NOT secure).
	Simulation bool `json:"simulation"`
	// Parts are the Coordinator and, when installed, the injection webhook.
	Parts []CheckPart `json:"parts"`
	// WaitedSeconds is how long the check waited for readiness.
	WaitedSeconds float64 `json:"waited_seconds"`
}

// CheckPart is one part of an installation.
type CheckPart struct {
	// Name is "coordinator" or "injector".
	Name string `json:"name"`
	// Ready is true when the part serves.
	Ready bool `json:"ready"`
	// Reason says what is not ready, e.g. a container's exit message or the scheduler's
	// complaint; empty when ready.
	Reason string `json:"reason,omitempty"`
}
