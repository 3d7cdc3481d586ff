// Package sim is a simulated Intel SGX platform for development, CI and demos on machines
// without SGX.
//
// [Create] makes a directory that holds a simulated "Intel" PKI (root CA, PCK CA, PCK
// certificate with the SGX extension, TCB Signing certificate), signed TCB Info and QE Identity,
// CRLs, and the private keys of all of them. [Platform.Quote] then produces SGX ECDSA quote v3
// bytes that are byte-compatible with real ones: they go through exactly the verification code
// of package [github.com/cloister-dev/cloister/sgx/verify] that real quotes go through; only the
// pinned root ([Platform.Root]) differs from Intel's.
//
// # Security
//
// A simulated platform is NOT SECURE. Anyone who can read its directory holds every private key
// of its PKI and can forge a quote for any enclave, any TCB status and any report data. A
// verifier that pins a simulated root accepts such forgeries. Use it for tests and demos only;
// production verifiers pin Intel's SGX Root CA. The warning is repeated in the directory's
// README-SIMULATION.txt, in platform.json and in every certificate's organization name.
//
// # Layout
//
// The directory is a collateral directory in the layout of the real DCAP test vectors (read it
// with verify.LoadCollateral), plus the simulated root and private keys:
//
//	README-SIMULATION.txt          the insecurity warning
//	platform.json                  metadata (written last: Load refuses a directory without it)
//	root_ca.pem                    the simulated root CA: pin this one
//	pck_chain.pem                  PCK certificate, PCK CA, root (as in quotes)
//	tcb_info.json                  {"tcbInfo":{...},"signature":"<hex r‖s>"}
//	tcb_info_issuer_chain.pem      TCB Signing certificate, root
//	qe_identity.json               {"enclaveIdentity":{...},"signature":"<hex r‖s>"}
//	qe_identity_issuer_chain.pem   TCB Signing certificate, root
//	root_ca_crl.der                CRL of the root CA
//	pck_crl.der                    CRL of the PCK CA
//	pck_crl_issuer_chain.pem       PCK CA, root
//	private/                       0700; PKCS #8 PEM keys, 0600: root_ca_key.pem,
//	                               pck_ca_key.pem, pck_key.pem, tcb_signing_key.pem,
//	                               attestation_key.pem
//
// # Awkward cases
//
// [Platform.WriteCollateral] writes further collateral directories for the same platform (same
// root and PCK, so the same quotes verify against each of them) with another TCB status and
// advisories, another QE TCB status, a revoked PCK certificate or PCK CA, or chosen issue and
// next-update dates (expired or not yet valid collateral). A debug enclave needs no option: set
// [sgx.AttrDebug] in the report body's attributes; the quote is valid and only the relying
// party's policy rejects it, as with real debug enclaves.
//
// # Cost and concurrency
//
// [Load] precomputes the whole quote except the report body and its signature, so
// [Platform.Quote] costs one ECDSA P-256 signature and a copy. A [Platform] is immutable and
// safe for concurrent use.
package sim
