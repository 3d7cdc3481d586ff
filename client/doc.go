// Package client is the Go SDK of Cloister: it verifies a Coordinator by remote attestation
// and talks to it.
//
// Verification comes first. [Verify] connects to a Coordinator, asks for a quote over a fresh
// nonce, and checks that the quote is genuine (chain to the pinned SGX root), fresh (the
// nonce), bound to the TLS key of this very connection, and from the expected Coordinator
// enclave. It returns the deployment's root certificate, which [New] then pins for every later
// call: a Coordinator that cannot present a certificate issued directly by that root, marked as
// the Coordinator's, is refused.
//
// Workloads use [DialMesh]: the same verification on the workload API, with the Coordinator's
// shared quote of the current epoch instead of a nonce (bound to the key the TLS handshake
// proved, at most [Expect].MaxQuoteAge old; see [VerifyEpochQuoteResponse]), then activation on
// the same connection ([MeshSession.Activate]). Both live in package client/attested, which the
// launcher uses without net/http; the names here are the same.
//
// This package is the one Cloister promises to keep stable.
package client
