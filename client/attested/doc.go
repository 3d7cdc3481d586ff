// Package attested verifies a Coordinator by remote attestation and talks to its workload API
// on the verified connection. It is the part of the Go SDK (package client) that the launcher
// needs, kept apart so that the launcher links neither net/http nor anything else of the SDK:
// it writes its HTTP/1.1 requests and reads the answers itself, one connection at a time.
//
// [Verify] checks a quote over a fresh nonce; [DialMesh] checks the Coordinator's shared quote
// of the current epoch ([VerifyEpochQuoteResponse]: bound to the key the TLS handshake proved,
// recent by [Expect].MaxQuoteAge), then activates on the same connection
// ([MeshSession.Activate]). Package client re-exports every name.
package attested
