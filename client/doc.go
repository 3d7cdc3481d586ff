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
// Workloads use [DialMesh]: the same verification on the workload API, then activation on the
// same connection ([MeshSession.Activate]).
//
// This package is the one Cloister promises to keep stable.
package client
