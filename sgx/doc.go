// Package sgx holds the Intel SGX evidence formats: the 384-byte enclave report body, the ECDSA
// quote version 3 that wraps it, and the SGX extensions of PCK certificates.
//
// It parses and serializes; it does not verify. Signatures, certificate chains, collateral and
// TCB levels are checked by package [github.com/cloister-dev/cloister/sgx/verify], which
// uses the raw bytes this package keeps ([Quote.SignedBytes], [Quote.RawQEReport]) rather than a
// re-encoding.
//
// # Bounds
//
// Every parser here takes bytes from outside the trust boundary. [ParseQuote] refuses inputs
// larger than [MaxQuoteSize] and certification data holding more than [MaxPCKChainLen]
// certificates; [ParsePCKExtensions] refuses extension values larger than 4 KiB. Errors say which
// field was wrong, what was expected and what was found.
package sgx
