// Package pki is the certificate authority of a Cloister deployment.
//
// A deployment has one long-lived root ([NewRoot]), one intermediate per
// manifest version ([CA.NewIntermediate]) and short-lived workload
// certificates ([CA.IssueLeaf]) that carry the workload's SPIFFE ID
// ([SPIFFEID]) as a URI SAN. CA keys are ECDSA P-256; workload keys may be
// any of the algorithms [GenerateKey] knows, and keys received in CSRs are
// limited to the same families by [ParseCSR].
//
// # Simulation
//
// A root created with [RootConfig.Simulation] set, and everything issued
// below it, carries the organizational unit [SimulationOU]
// ("SIMULATION - NOT SECURE") so that anyone who looks at a certificate sees
// that it came from a deployment without real SGX protection.
// [IsSimulation] reports it.
//
// # Encoding
//
// One encoding per thing: certificates as PEM "CERTIFICATE" blocks, private
// keys as PEM "PRIVATE KEY" (PKCS #8), public keys as PEM "PUBLIC KEY"
// (PKIX), CSRs as DER. Parsers are size-bounded and strict: they reject
// anything but whitespace between and around blocks.
//
// Only crypto/x509 from the standard library is used. A [CA] is immutable
// after it is made and safe for concurrent use when its Key is (the keys made
// here are). Private key bytes never appear in errors.
package pki
