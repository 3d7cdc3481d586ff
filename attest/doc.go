// Package attest connects TEE evidence to the rest of Cloister: it produces evidence inside a
// workload or the Coordinator ([Issuer]) and verifies it on the other side ([Verifier]), with
// the collateral the verification needs ([CollateralSource]).
//
// SGX is the only TEE kind today. Evidence is an SGX ECDSA quote v3; verification is package
// sgx/verify. Simulation is not a mock: [SimIssuer] produces real quotes on a simulated
// platform, and they go through the same [Verifier] as quotes from hardware; only the pinned root
// differs.
//
// # Report data bindings
//
// Whoever proves itself puts 64 bytes of report data into its quote:
//
//   - the Coordinator: SHA-256 over its TLS public key's hash and its audit log's head (entry
//     number and hash), then the verifier's 32-byte nonce ([CoordinatorReportData]), so a
//     quote vouches for the log a client is shown;
//   - a workload activating: SHA-256 of its CSR public key, then the TLS exporter value of the
//     activation connection ([ActivationReportData]), so a quote cannot be replayed on another
//     connection.
package attest
