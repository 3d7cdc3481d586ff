// Package pcs fetches Intel SGX collateral (TCB Info, QE Identity, PCK CRL, root CA CRL) from
// the Intel Provisioning Certification Service (PCS) or a caching service (PCCS), API versions
// 3 and 4, and keeps a verified copy of it in memory and on disk.
//
// # Client
//
// A [Client] speaks the PCS/PCCS HTTP API: [Client.TCBInfo], [Client.QEIdentity],
// [Client.PCKCRL], [Client.RootCACRL], and [Client.Fetch] for a whole set. It parses what it
// receives (issuer chains from their URL-encoded PEM headers; CRLs as DER, PEM or hex) and
// bounds every response: [MaxBodySize] per body, [MaxHeaderSize] per header. It verifies no
// signature: that is the [Provider]'s job, or the verifier's.
//
// # Provider
//
// A [Provider] serves collateral per FMSPC and PCK CA type, the interface the Coordinator
// consumes. Its rules:
//
//   - Everything is checked with [verify.Verifier.CheckCollateral] under a pinned root
//     (Intel's by default) before it is stored or served: signatures, chains, CRLs, that the
//     TCB Info is for the FMSPC asked for and the PCK CRL for the CA type asked for. Collateral
//     that verifies but is outside its validity is kept: the caller's policy sees
//     CollateralExpired and decides.
//   - A copy is served until its earliest nextUpdate, then refreshed. Concurrent requests for
//     one FMSPC and CA type share one fetch.
//   - A refresh never replaces the copy with an older one: a lower tcbEvaluationDataNumber, an
//     earlier issueDate or an earlier CRL thisUpdate is refused with a warning (rollback
//     protection).
//   - When the service is unreachable, answers errors or serves collateral that does not
//     verify, the verified copy is kept and served, even after its nextUpdate, and the failure
//     is logged; the next attempt waits [ProviderConfig.RetryInterval].
//   - Items the service does not have (HTTP 404 for a CRL) are left nil; a CRL the copy had is
//     carried over rather than dropped.
//
// # Cache directory
//
// With [ProviderConfig.Dir] set, each set is written to DIR/<FMSPC>-<ca>/ (for example
// 00906ED50000-processor/) in the layout of [verify.LoadCollateral]. A set is written to a
// hidden temporary directory and renamed into place, so a directory always holds one complete
// set. [NewProvider] loads and verifies every set again; a set that does not verify is logged
// and never served, and is replaced by the next successful fetch.
package pcs
