package manifest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cloister-dev/cloister/sgx/verify"
)

// Size limits.
const (
	// MaxSize is the largest manifest document Parse accepts, in bytes (4 MiB).
	MaxSize = 4 << 20
	// MaxRenderedValue is the largest rendered file, environment value or argument, in bytes
	// (1 MiB).
	MaxRenderedValue = 1 << 20
	// MaxRenderedTotal is the largest total output of one Render, in bytes (16 MiB).
	MaxRenderedTotal = 16 << 20
	// MaxUserDefinedSize is the largest max_size of a user-defined secret, in bytes (1 MiB).
	MaxUserDefinedSize = 1 << 20
)

// Defaults of optional settings.
const (
	// DefaultTrustDomain is the SPIFFE trust domain when settings.trust_domain is absent.
	DefaultTrustDomain = "cloister.internal"
	// DefaultWorkloadCertificateValidity applies when settings.workload_certificate_validity
	// is absent.
	DefaultWorkloadCertificateValidity = Duration(24 * time.Hour)
	// DefaultCertificateValidity is the validity of a certificate secret without "validity".
	DefaultCertificateValidity = Duration(8760 * time.Hour)
	// DefaultKeyAlgorithm is the algorithm of a certificate secret without "algorithm".
	DefaultKeyAlgorithm = ECDSAP256
	// DefaultUserDefinedSize is the max_size of a user-defined secret without one, in bytes.
	DefaultUserDefinedSize = 64 << 10
	// DefaultUpdateThreshold is governance.update_threshold when it is absent: one updater
	// suffices, as before governance existed.
	DefaultUpdateThreshold = 1
	// DefaultPendingUpdateExpiry is governance.pending_update_expiry when it is absent.
	DefaultPendingUpdateExpiry = Duration(72 * time.Hour)
)

// Manifest is a parsed and validated deployment manifest.
//
// Create a Manifest with [Parse]; it keeps the submitted bytes ([Manifest.Bytes],
// [Manifest.Digest]) and the parsed templates ([Manifest.Render]). After Parse every field
// with a default holds its value, so readers need not know the defaults. A Manifest from
// Parse must not be modified; it is then safe for concurrent use by multiple goroutines.
//
// Later versions add optional top-level keys (such as "governance": multi-party approval of
// manifest updates and recovery keys). A manifest that does not use them keeps its
// meaning; one that does is rejected by older versions, which know no such key.
type Manifest struct {
	// Schema is the "$schema" key, allowed so editors can find the JSON Schema; ignored.
	Schema string `json:"$schema,omitempty"`
	// Settings are deployment-wide settings.
	Settings Settings `json:"settings,omitzero"`
	// Packages maps package names to enclave identities.
	Packages map[string]Package `json:"packages,omitempty"`
	// Workloads maps workload names to their package, certificate names and templates.
	Workloads map[string]Workload `json:"workloads,omitempty"`
	// Secrets maps secret names to secret definitions.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// Users maps user names to their certificates and roles.
	Users map[string]User `json:"users,omitempty"`
	// Roles maps role names to permissions.
	Roles map[string]Role `json:"roles,omitempty"`
	// Governance says how many updaters must approve an update, and who can recover the
	// Coordinator's state.
	Governance Governance `json:"governance,omitzero"`

	raw       []byte
	digest    [32]byte
	present   map[string]struct{}          // paths of the keys in raw; nil unless made by Parse
	workloads map[string]*compiledWorkload // parsed templates; nil unless made by Parse
}

// Parse decodes and validates a manifest document.
//
// Decoding is strict: the document must be one JSON object of at most [MaxSize] bytes of
// valid UTF-8, with no unknown or duplicate keys, no values of the wrong JSON type and
// nothing but white space after it. Parse then applies defaults and calls
// [Manifest.Validate]. The error is a *[FieldError] or several joined; each names the JSON
// path of the problem. The returned Manifest keeps a copy of b.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, &FieldError{
			Path: "$",
			Msg:  fmt.Sprintf("manifest is %d bytes; expected at most %d", len(b), MaxSize),
			Err:  ErrTooLarge,
		}
	}
	if !utf8.Valid(b) {
		return nil, &FieldError{
			Path: "$",
			Msg:  fmt.Sprintf("manifest is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(b)),
		}
	}
	m := new(Manifest)
	present, err := decodeStrict(b, m, "manifest object")
	if err != nil {
		return nil, err
	}
	m.present = present
	m.applyDefaults()
	workloads, err := m.check()
	if err != nil {
		return nil, err
	}
	m.raw = bytes.Clone(b)
	m.digest = sha256.Sum256(b)
	m.workloads = workloads
	return m, nil
}

// Validate checks every rule of the manifest and reports every problem found, as
// *[FieldError] values joined with errors.Join (at most 1000, then a summary). It compiles
// and dry-runs every template against placeholder values. Parse calls Validate; call it
// yourself only on a Manifest you built. In such a Manifest a field's zero value means the
// key is absent (and its default applies); in a parsed one, a key that is present counts
// as given whatever its value.
func (m *Manifest) Validate() error {
	_, err := m.check()
	return err
}

// Bytes returns a copy of the document as it was submitted to [Parse], or nil for a
// Manifest that Parse did not make.
func (m *Manifest) Bytes() []byte { return bytes.Clone(m.raw) }

// Digest returns the SHA-256 of the document as submitted to [Parse]. It identifies a
// manifest version; a Manifest that Parse did not make has the zero digest.
func (m *Manifest) Digest() [32]byte { return m.digest }

// SPIFFEID returns the SPIFFE ID of workload: spiffe://<trust domain>/<workload>. It does
// not check that the workload exists.
func (m *Manifest) SPIFFEID(workload string) string {
	return "spiffe://" + m.trustDomain() + "/" + workload
}

func (m *Manifest) trustDomain() string {
	if m.Settings.TrustDomain == "" {
		return DefaultTrustDomain
	}
	return m.Settings.TrustDomain
}

// has reports whether the key at path p is given: for a parsed Manifest whether the
// document contains it, otherwise whether its value is set (non-zero).
func (m *Manifest) has(p string, set bool) bool {
	if m.present == nil {
		return set
	}
	_, ok := m.present[p]
	return ok
}

// applyDefaults fills every defaulted field whose key is absent. It replaces map entries
// rather than modifying values that other Manifests may share.
func (m *Manifest) applyDefaults() {
	if !m.has("$.settings.trust_domain", m.Settings.TrustDomain != "") {
		m.Settings.TrustDomain = DefaultTrustDomain
	}
	if !m.has("$.settings.workload_certificate_validity", m.Settings.WorkloadCertificateValidity != 0) {
		m.Settings.WorkloadCertificateValidity = DefaultWorkloadCertificateValidity
	}
	if !m.has("$.governance.update_threshold", m.Governance.UpdateThreshold != 0) {
		m.Governance.UpdateThreshold = DefaultUpdateThreshold
	}
	if !m.has("$.governance.pending_update_expiry", m.Governance.PendingUpdateExpiry != 0) {
		m.Governance.PendingUpdateExpiry = DefaultPendingUpdateExpiry
	}
	for name, p := range m.Packages {
		if p.TCBStatuses == nil {
			p.TCBStatuses = slices.Clone(verify.DefaultTCBStatuses)
			m.Packages[name] = p
		}
	}
	for name, s := range m.Secrets {
		p := keyPath("$.secrets", name)
		switch s.Type {
		case Certificate:
			if !m.has(p+".algorithm", s.Algorithm != "") {
				s.Algorithm = DefaultKeyAlgorithm
			}
			if !m.has(p+".validity", s.Validity != 0) {
				s.Validity = DefaultCertificateValidity
			}
			if !m.has(p+".common_name", s.CommonName != "") {
				s.CommonName = name
			}
		case UserDefined:
			if !m.has(p+".max_size", s.MaxSize != 0) {
				s.MaxSize = DefaultUserDefinedSize
			}
		}
		m.Secrets[name] = s
	}
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
