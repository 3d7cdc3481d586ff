package manifest

import (
	"fmt"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/sgx/verify"
)

// Settings are deployment-wide settings, the "settings" object.
type Settings struct {
	// TrustDomain is the SPIFFE trust domain of every workload identity: lowercase letters,
	// digits, dots, hyphens and underscores, at most 255 bytes. Default [DefaultTrustDomain].
	TrustDomain string `json:"trust_domain,omitempty"`
	// WorkloadCertificateValidity is how long a workload certificate is valid, from 5s (for tests of
	// renewal, which happens at about 2/3 of it; each renewal is an activation) to
	// 8760h. Default [DefaultWorkloadCertificateValidity].
	WorkloadCertificateValidity Duration `json:"workload_certificate_validity,omitzero"`
}

// Package is the enclave identity that workloads of one kind must prove, an entry of the
// "packages" object. Exactly one of MREnclave and MRSigner is set; MRSigner comes with
// ISVProdID and MinISVSVN.
type Package struct {
	// MREnclave is the exact enclave measurement, 64 lowercase hex digits.
	MREnclave string `json:"mrenclave,omitempty"`
	// MRSigner is the SHA-256 of the enclave signer's modulus, 64 lowercase hex digits.
	MRSigner string `json:"mrsigner,omitempty"`
	// ISVProdID is the product ID the signer gave the enclave; required with MRSigner.
	ISVProdID *uint16 `json:"isvprodid,omitempty"`
	// MinISVSVN is the lowest security version (ISVSVN) accepted; required with MRSigner.
	MinISVSVN *uint16 `json:"min_isvsvn,omitempty"`
	// Debug admits debug enclaves, whose memory the host can read. Default false.
	Debug bool `json:"debug,omitempty"`
	// TCBStatuses are the platform TCB statuses accepted, spelled as Intel does.
	// Nil means the default, [verify.DefaultTCBStatuses]; an empty list is invalid.
	TCBStatuses []verify.TCBStatus `json:"tcb_statuses,omitempty"`
	// Advisories restricts the Intel security advisories a platform may be affected by.
	// Nil (absent or null in JSON) means no restriction; a list, even an empty one, means
	// every advisory ID the platform reports must be in it. See [Package.AdvisoryAllowed].
	Advisories *[]string `json:"advisories,omitempty" manifest:"nullable"`
}

// AdvisoryAllowed reports whether a platform affected by the advisory id (such as
// "INTEL-SA-00615") is acceptable to p.
func (p Package) AdvisoryAllowed(id string) bool {
	if p.Advisories == nil {
		return true
	}
	return slices.Contains(*p.Advisories, id)
}

// Workload is one kind of confidential container, an entry of the "workloads" object. Its
// name is part of its SPIFFE ID and may be used as a DNS label.
type Workload struct {
	// Package names the entry of "packages" whose identity instances must prove.
	Package string `json:"package"`
	// MaxActivations bounds how many instances may activate, 0 to 2147483647; 0 (the
	// default) means unlimited.
	MaxActivations int `json:"max_activations,omitempty"`
	// TLS lists extra subject alternative names for the workload certificate.
	TLS TLS `json:"tls,omitzero"`
	// Env maps environment variable names to templates of their values.
	Env map[string]string `json:"env,omitempty"`
	// Files maps absolute, clean file paths to templates of their contents.
	Files map[string]string `json:"files,omitempty"`
	// Argv lists templates of the command line; empty means the image's own.
	Argv []string `json:"argv,omitempty"`
	// FileKeys names the secrets whose values the workload receives as keys of its protected
	// files (the files the converter encrypted). Each is a shared 256-bit symmetric-key secret
	// or a user-defined secret (the key the converter generated, uploaded after conversion).
	FileKeys []string `json:"file_keys,omitempty"`
	// Exec makes the launcher exec the application, which then runs as the container's PID 1,
	// instead of supervising it as its child. Default false: the launcher stays as init,
	// forwards signals, reaps zombies and renews the workload certificate before it expires.
	// An exec'd application keeps the certificate of its start until it expires.
	Exec bool `json:"exec,omitempty"`
	// ReloadSignal names the signal the launcher sends the application after each renewal
	// replaced its files, one of [ReloadSignals]; empty sends none (the application finds the
	// files changed). Not allowed with Exec, where nothing renews.
	ReloadSignal string `json:"reload_signal,omitempty"`
}

// ReloadSignals lists the signals a workload may name as its reload_signal: the ones servers
// use to reread their configuration or reopen their files (nginx and HAProxy: SIGHUP, or
// SIGUSR1/SIGUSR2). Each ends a process that does not handle it, so name one only for an
// application that does.
var ReloadSignals = []string{"SIGHUP", "SIGUSR1", "SIGUSR2"}

// TLS lists the subject alternative names of a workload certificate besides its SPIFFE ID.
type TLS struct {
	// DNS are lowercase DNS names; the leftmost label may be "*".
	DNS []string `json:"dns,omitempty"`
	// IP are IPv4 or IPv6 addresses, without zones.
	IP []string `json:"ip,omitempty"`
	// AllowedDNS are DNS names and patterns ("*.apps.svc.cluster.local" covers one label
	// there) that an instance may request for its certificate besides DNS (the launcher
	// requests those in CLOISTER_DNS_NAMES, which the injector sets to the pod's Service
	// names). A requested name is issued only if [Manifest.CheckRequestedDNS] allows it.
	AllowedDNS []string `json:"allowed_dns,omitempty"`
}

// SecretType is the kind of a secret.
type SecretType string

// The secret types.
const (
	// SymmetricKey is a random key of Secret.Size bits, generated by the Coordinator.
	SymmetricKey SecretType = "symmetric-key"
	// Certificate is a key pair and X.509 certificate generated by the Coordinator.
	Certificate SecretType = "certificate"
	// Plain is a value written in the manifest itself (Secret.Value).
	Plain SecretType = "plain"
	// UserDefined is a value uploaded later through the Coordinator's API.
	UserDefined SecretType = "user-defined"
)

// SecretTypes lists every secret type.
var SecretTypes = []SecretType{SymmetricKey, Certificate, Plain, UserDefined}

// KeyAlgorithm is the key type of a certificate secret.
type KeyAlgorithm string

// The key algorithms of certificate secrets.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	RSA2048   KeyAlgorithm = "rsa-2048"
	RSA3072   KeyAlgorithm = "rsa-3072"
	RSA4096   KeyAlgorithm = "rsa-4096"
	Ed25519   KeyAlgorithm = "ed25519"
)

// KeyAlgorithms lists every key algorithm.
var KeyAlgorithms = []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519}

// Secret describes a secret the Coordinator holds, an entry of the "secrets" object. Which
// fields apply depends on Type; a field set for a type it does not apply to is invalid.
type Secret struct {
	// Type is the kind of secret; required.
	Type SecretType `json:"type"`
	// Size is the key length in bits for symmetric-key secrets: a multiple of 8 from 128
	// to 4096; required for that type.
	Size int `json:"size,omitempty"`
	// Algorithm is the key type of a certificate secret. Default [DefaultKeyAlgorithm].
	Algorithm KeyAlgorithm `json:"algorithm,omitempty"`
	// Validity is how long a certificate secret is valid, 1m to 87600h.
	// Default [DefaultCertificateValidity].
	Validity Duration `json:"validity,omitzero"`
	// CommonName is the subject common name of a certificate secret, 1 to 64 characters.
	// Default: the secret's name.
	CommonName string `json:"common_name,omitempty"`
	// DNS are DNS subject alternative names of a certificate secret.
	DNS []string `json:"dns,omitempty"`
	// IP are IP address subject alternative names of a certificate secret.
	IP []string `json:"ip,omitempty"`
	// SelfSigned makes a certificate secret sign itself instead of being issued by the
	// deployment's intermediate CA. Default false.
	SelfSigned bool `json:"self_signed,omitempty"`
	// IsCA makes a certificate secret a CA certificate. Default false.
	IsCA bool `json:"is_ca,omitempty"`
	// Value is the value of a plain secret, used as its UTF-8 bytes; required, not empty.
	Value string `json:"value,omitempty"`
	// MaxSize bounds a user-defined secret's value in bytes, 1 to [MaxUserDefinedSize].
	// Default [DefaultUserDefinedSize].
	MaxSize int `json:"max_size,omitempty"`
	// PerInstance gives every workload instance its own value instead of one value shared
	// by all. Default false; not allowed for plain and user-defined secrets.
	PerInstance bool `json:"per_instance,omitempty"`
}

// User is a person or system that operates the deployment, an entry of the "users" object.
type User struct {
	// Certificate is the user's X.509 client certificate, one PEM block; it authenticates
	// the user to the Coordinator. No two users may have the same certificate.
	Certificate string `json:"certificate"`
	// Roles names entries of "roles" granted to the user.
	Roles []string `json:"roles,omitempty"`
}

// Resource is what a role grants access to.
type Resource string

// The resources a role can grant access to.
const (
	// ResourceSecrets is a set of secrets, named in Role.Names.
	ResourceSecrets Resource = "secrets"
	// ResourceManifest is the deployment manifest itself.
	ResourceManifest Resource = "manifest"
	// ResourcePackages is a set of packages, named in Role.Names; its one action, update,
	// raises a package's min_isvsvn.
	ResourcePackages Resource = "packages"
	// ResourceAudit is the Coordinator's audit log; its one action is read. While no role of
	// the manifest covers it, every user of the manifest may read the log (as before the
	// resource existed); once one does, only the users holding such a role may.
	ResourceAudit Resource = "audit"
)

// Resources lists every resource.
var Resources = []Resource{ResourceSecrets, ResourceManifest, ResourcePackages, ResourceAudit}

// Action is something a role permits on its resource.
type Action string

// The actions a role can permit.
const (
	// Read permits reading the named secrets' values.
	Read Action = "read"
	// Write permits setting the named secrets' values; they must be user-defined.
	Write Action = "write"
	// Update permits replacing the manifest (resource manifest), or raising the min_isvsvn of
	// the named packages (resource packages).
	Update Action = "update"
)

// Role is a set of permissions, an entry of the "roles" object.
type Role struct {
	// Resource is what the role grants access to; required.
	Resource Resource `json:"resource"`
	// Names lists the secrets a secrets role covers, or the packages a packages role
	// covers; required for secrets and packages roles and not allowed for manifest roles.
	Names []string `json:"names,omitempty"`
	// Actions are the permitted actions: read and write for secrets, update for the
	// manifest and for packages; at least one.
	Actions []Action `json:"actions"`
}

// Governance says how the manifest may change and who can recover the Coordinator's state,
// the "governance" object. A manifest without it keeps the meaning it had before the object
// existed: one updater suffices, and there is no recovery.
type Governance struct {
	// UpdateThreshold is how many users whose roles grant update on the manifest must approve
	// an update before it applies: 1 to the number of such users. Default 1, with which one
	// updater may also replace the manifest directly ("manifest set").
	UpdateThreshold int `json:"update_threshold,omitempty"`
	// PendingUpdateExpiry is how long a proposed update waits for its approvals before it
	// lapses, from 1m to 720h. Default [DefaultPendingUpdateExpiry].
	PendingUpdateExpiry Duration `json:"pending_update_expiry,omitzero"`
	// Recovery lists the key holders who can, Threshold of them together, recover the
	// Coordinator's state when it can no longer unseal it. Absent: no recovery.
	Recovery *Recovery `json:"recovery,omitempty"`
}

// Recovery is the "governance.recovery" object: k-of-n recovery key holders.
type Recovery struct {
	// Threshold is how many holders must take part in a recovery: 1 to the number of keys.
	// With 1, every holder alone can recover the state (each share is the data key).
	Threshold int `json:"threshold"`
	// Keys maps holder names (named like users) to their public keys: one PEM "PUBLIC KEY"
	// block each, an RSA key of exactly 3072 bits (shares are encrypted with RSA-OAEP) or an
	// X25519 key; 1 to [MaxRecoveryKeys] of them, no key given twice. See [ParseRecoveryKey].
	Keys map[string]string `json:"keys"`
}

// Duration is a length of time, written in JSON as a Go duration string such as "24h",
// "90m" or "1h30m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns d in Go duration syntax, for example "24h0m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText returns d in Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("expected a duration such as \"24h\" or \"90m\", found %s", quote(string(b)))
	}
	*d = Duration(v)
	return nil
}
