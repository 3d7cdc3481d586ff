// Package verify verifies Intel SGX ECDSA (DCAP) quotes with their collateral, in pure Go and in
// the order of Intel's Quote Verification Library (QVL), and applies a relying party's
// [Policy] to the result.
//
// Simulated platforms produce the same quote format under another root; they go through
// exactly this code, with their root pinned instead of [IntelRoot].
//
// # Use
//
//	v := verify.New(verify.IntelRoot())           // once; safe for concurrent use
//	col, err := verify.LoadCollateral(dir)        // or parse PCS responses with ParseTCBInfo …
//	res, err := v.Verify(quote, col, time.Now())  // res is non-nil whenever the quote parsed
//	err = policy.Check(res)                       // identity, debug, TCB status, expiry …
//
// # Trust
//
// A [Verifier] pins a root public key, not a certificate: every chain (the PCK chain in the
// quote, the TCB Info and QE Identity signing chains, the PCK CRL issuer chain) must end in a
// self-signed certificate with that key. Intel re-issued its root certificate with the same key
// and both appear in quotes. TCB Info and QE Identity signatures are checked over the exact
// bytes of their JSON values as served, never a re-encoding. Chains must have the shape Intel
// uses (PCK certificate, PCK CA, root; TCB Signing certificate, root), so that no other key under
// the root, such as a platform's PCK key, can sign collateral.
//
// # Verification order
//
// Verify runs these checks and returns a [*CheckError] naming the first that fails:
//
//  1. [CheckQuoteFormat]: the quote parses (package sgx).
//  2. [CheckPCKChain], [CheckPCKCertificate]: PCK certificate ← PCK CA ← root, signatures and
//     the pinned root key; the PCK certificate's SGX extension (FMSPC, PCE-ID, TCB) and CA type.
//  3. [CheckRootCACRL], [CheckPCKCRL], [CheckRevocation]: the root CA CRL is signed by the
//     pinned root; the PCK CRL by the PCK CA, and issued by the PCK certificate's issuer;
//     neither the PCK certificate, its CA nor a collateral signing certificate is revoked.
//  4. [CheckTCBInfoIssuerChain], [CheckTCBInfoSignature], [CheckQEIdentityIssuerChain],
//     [CheckQEIdentitySignature]: the signing chains and the signatures over the exact bytes.
//  5. Validity at the given instant of every certificate, CRL, TCB Info and QE Identity: this is
//     recorded in [Platform] (CollateralExpired, Expired, CollateralExpiry), not an error.
//  6. [CheckTCBInfoMatch]: TCB Info is for the PCK certificate's FMSPC and PCE-ID.
//  7. [CheckQEVendorID]: the quote names Intel's Quoting Enclave.
//  8. [CheckQEReportSignature]: the PCK key signed the QE report.
//  9. [CheckQEReportData]: QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes.
//  10. [CheckQEIdentity]: the QE report's MRSIGNER, ISVPRODID, masked MISCSELECT and masked
//     ATTRIBUTES match QE Identity.
//  11. [CheckQuoteSignature]: the attestation key (a point on P-256) signed header ‖ body.
//  12. [CheckTCBLevel]: the platform TCB level is the first TCB Info level (highest first) whose
//     16 component SVNs and PCESVN are all at or below the PCK certificate's (not the quote
//     header's, not CPUSVN); the QE TCB level is the highest QE Identity level at or below the
//     QE's ISVSVN. Their statuses converge as in QVL and their advisory IDs are united. No
//     matching level is [ErrTCBLevelNotSupported].
//  13. [CheckCollateral]: TCB Info, QE Identity or a chain signing them was missing
//     ([ErrCollateralMissing]). Every check that can run without them runs first, so a damaged
//     quote fails at the check that detects the damage.
//
// Missing CRLs are not an error: [Platform.CRLChecked] is false. [Verifier.CheckCollateral]
// runs steps 3 and 4 (and 5, as an error) on collateral alone.
//
// # Caching and bounds
//
// A Verifier caches verified collateral, PCK chains and QE report, certificate and CRL
// signatures, keyed by hashes of the bytes they depend on, in bounded caches; the quote
// signature and all time checks run on every call. Parsers refuse inputs larger than
// [MaxCollateralItemSize] (quotes: [sgx.MaxQuoteSize]).
package verify
