// Package core is the Coordinator without its network: the state machine, the deployment's
// PKI, the manifest and its secrets, workload activation, and the operator actions (manifest,
// secrets, users and roles). It never imports net/http; package coordinator/server puts it on
// the wire.
//
// # States
//
// A new Coordinator waits for a manifest. The first manifest may be set by anyone who reached
// the Coordinator after verifying it (trust on first use): set it right after deployment. From
// then on the Coordinator runs, and changing the manifest needs a user whose role grants
// "update" on the manifest.
//
// # Governance
//
// With governance.update_threshold k > 1, one updater cannot change the manifest alone: an
// update is proposed ([Core.ProposeManifest]), approved by k updaters of the manifest in force,
// each signing its approval message ([Core.ApproveManifest]), and applied by the approval that
// reaches k, through the same path as [Core.SetManifest]. One update is pending at a time; it
// survives restarts, expires, can be withdrawn ([Core.CancelManifest]) and is withdrawn by any
// other manifest change. [Core.UpdateSVN] raises a package's min_isvsvn without approval.
//
// # Recovery
//
// When the manifest names recovery key holders (governance.recovery), the store's data key is
// split among them after each manifest change that changes them, and the share files are
// returned to the caller (see recovery.go). A Coordinator whose store does not unseal runs
// [Recovery] instead of a Core: it serves its status and a recovery challenge, collects
// holders' signed shares and, with enough of them, hands the rebuilt key to its Complete
// function, which reopens the store and starts a Core on it (see recovery_mode.go).
//
// # Persistence
//
// Everything that must survive a restart — the root CA, the Coordinator's TLS key, every
// manifest version and its intermediate CA, the secrets, per-instance certificates, the master
// key of derived per-instance secrets (derive.go) and activation counts — lives in a
// [store.DB], encrypted under a data key that a seal provider protects. Every change is one
// transaction: a crash leaves the previous state or the new one. Per-instance symmetric keys
// are derived, not stored, so the state does not grow with the number of instances.
package core
