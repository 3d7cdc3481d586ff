// Package coordinator assembles a Coordinator daemon from its parts: the TEE it proves itself
// and seals with (SGX inside Gramine, or a simulated platform), the sealed store, the core
// ([core.Core]), its APIs ([server.Server]), metrics and an optional pprof endpoint, and the
// order in which they start and stop. `cloister coordinator` turns its flags into a [Config];
// tests, benchmarks and the demo start exactly the same assembly.
//
// # Lifecycle
//
// [New] validates the Config, sets up the TEE, opens the store and binds every listener, so
// that a caller knows the addresses (ports chosen by the kernel with ":0") before serving.
// [Coordinator.Run] serves until its context ends, then stops the APIs, flushes the last
// activation counts and closes the store, in that order. A Coordinator that is never run must
// be closed with [Coordinator.Close].
package coordinator
