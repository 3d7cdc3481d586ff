package client

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// BundleFormat names the offline evidence bundle format in its "format" field.
const BundleFormat = "cloister-verification-bundle-v2"

// MaxBundleSize bounds a bundle file: a quote, its collateral (CRLs included) and two
// certificates fit in well under 1 MiB.
const MaxBundleSize = 4 << 20

// Bundle is offline evidence about a Coordinator: its answer to a fresh nonce (quote,
// collateral, certificate chain, and the signed audit head the quote binds), when it was
// verified, and the manifest it reported then. `cloister verify --bundle` writes one; anyone can
// check it again later with [Bundle.Verify], with no network access.
type Bundle struct {
	Format string `json:"format"`
	// Coordinator is the address that was verified, for people; nothing depends on it.
	Coordinator string `json:"coordinator"`
	// Nonce is the verifier's nonce, 64 hex digits.
	Nonce string `json:"nonce"`
	// VerifiedAt is when the answer was verified: the default instant to verify it at again.
	VerifiedAt time.Time `json:"verified_at"`
	// ManifestVersion and ManifestDigest (SHA-256, hex) are what the Coordinator's status said
	// right after the quote; 0 and empty before the first manifest. The quote does not bind
	// them: the audit log does, whose head the quote binds (see [BundleOptions.Audit]).
	ManifestVersion int    `json:"manifest_version"`
	ManifestDigest  string `json:"manifest_digest,omitempty"`
	// Response is the Coordinator's answer.
	Response api.QuoteResponse `json:"response"`
}

// NewBundle returns the bundle of a verification v of the Coordinator at addr, made at at,
// with the status st it reported (nil if unknown).
func NewBundle(addr string, v *Verified, st *api.Status, at time.Time) *Bundle {
	b := &Bundle{Format: BundleFormat, Coordinator: addr, Nonce: hex.EncodeToString(v.Nonce[:]), VerifiedAt: at.UTC(), Response: *v.Response}
	if st != nil {
		b.ManifestVersion, b.ManifestDigest = st.ManifestVersion, st.ManifestDigest
	}
	return b
}

// ParseBundle reads a bundle: at most [MaxBundleSize] bytes of JSON with no unknown fields,
// in format [BundleFormat], with a nonce, a time, and an answer holding a quote, a certificate
// chain and an audit head. It checks the form only; [Bundle.Verify] checks the evidence.
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle: %d bytes; expected at most %d", len(b), MaxBundleSize)
	}
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("bundle: not JSON: %w", err)
	}
	if probe.Format != BundleFormat {
		return nil, fmt.Errorf("bundle: format %q; expected %q (bundles of earlier versions do not carry the audit head)", probe.Format, BundleFormat)
	}
	var bd Bundle
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bd); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if dec.More() {
		return nil, errors.New("bundle: data after the JSON object")
	}
	var errs []error
	if _, err := parseNonce(bd.Nonce); err != nil {
		errs = append(errs, err)
	}
	if bd.VerifiedAt.IsZero() {
		errs = append(errs, errors.New("verified_at: missing"))
	}
	if bd.ManifestDigest != "" {
		if d, err := hex.DecodeString(bd.ManifestDigest); err != nil || len(d) != sha256.Size {
			errs = append(errs, fmt.Errorf("manifest_digest: expected 64 hex digits, found %q", bounded(bd.ManifestDigest)))
		}
	}
	r := &bd.Response
	switch {
	case len(r.Quote) == 0:
		errs = append(errs, errors.New("response.quote: missing"))
	case r.CertificateChain == "":
		errs = append(errs, errors.New("response.certificate_chain: missing"))
	case r.AuditHead == nil:
		errs = append(errs, errors.New("response.audit_head: missing"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &bd, nil
}

func parseNonce(s string) ([32]byte, error) {
	var n [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, fmt.Errorf("nonce: expected 64 hex digits, found %q", bounded(s))
	}
	copy(n[:], b)
	return n, nil
}

func bounded(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// BundleOptions are what a bundle is checked with besides the expected Coordinator.
type BundleOptions struct {
	// At is the instant to verify at; zero means the bundle's VerifiedAt.
	At time.Time
	// Manifest, when set, is a manifest file that the bundle's manifest digest must be the
	// SHA-256 of.
	Manifest []byte
	// Audit, when set, is an export of the audit log (as `cloister audit log --export` writes)
	// that must verify with the bundle's deployment root and pass through the bundle's audit
	// head; the last manifest entry at or before that head must name the bundle's manifest
	// digest. That proves the manifest through the quote: quote → head → log → manifest.
	Audit io.Reader
}

// Check results of a [BundleCheck].
const (
	CheckOK      = "ok"
	CheckFailed  = "failed"
	CheckSkipped = "skipped"
)

// BundleCheck is one check of a bundle.
type BundleCheck struct {
	// Name is one of certificates, quote, policy, audit_head, report_data, manifest_file,
	// audit_log.
	Name string
	// Result is CheckOK, CheckFailed or CheckSkipped.
	Result string
	// Detail says what was found, or why it failed or was skipped.
	Detail string
}

// BundleReport is what [Bundle.Verify] found.
type BundleReport struct {
	// At is the instant the bundle was verified at.
	At time.Time
	// Checks are in the order they were made; a check that depends on a failed one is skipped.
	Checks []BundleCheck
	// Verified is the verified Coordinator, when the quote's checks passed.
	Verified *Verified
	// ManifestEntry is the audit entry that set the bundle's manifest, when an audit export
	// was given and proved it.
	ManifestEntry *audit.Entry
}

// OK reports whether no check failed.
func (r *BundleReport) OK() bool {
	for _, c := range r.Checks {
		if c.Result == CheckFailed {
			return false
		}
	}
	return true
}

// Err returns the failed checks as one error, or nil.
func (r *BundleReport) Err() error {
	var errs []error
	for _, c := range r.Checks {
		if c.Result == CheckFailed {
			errs = append(errs, fmt.Errorf("%s: %s", c.Name, c.Detail))
		}
	}
	return errors.Join(errs...)
}

func (r *BundleReport) add(name, result, format string, args ...any) {
	r.Checks = append(r.Checks, BundleCheck{Name: name, Result: result, Detail: fmt.Sprintf(format, args...)})
}

// Verify checks the bundle offline against e at opts.At (default: when it was made) and
// reports each check: the certificate chain (the Coordinator's certificate issued by the
// deployment root), the quote with its collateral, the policy (e: the Coordinator's identity, TCB
// status, debug bit, collateral validity), the audit
// head's signature by the deployment root, the report data (TLS key, nonce and audit head), and
// what opts adds (the manifest file, the audit log). e.Now is ignored.
func (b *Bundle) Verify(e Expect, opts BundleOptions) *BundleReport {
	at := opts.At
	if at.IsZero() {
		at = b.VerifiedAt
	}
	at = at.UTC()
	e.Now = func() time.Time { return at }
	rep := &BundleReport{At: at}
	resp := &b.Response
	skipRest := func(names ...string) *BundleReport {
		for _, n := range names {
			rep.add(n, CheckSkipped, "an earlier check failed")
		}
		return rep
	}

	certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err == nil && len(certs) != 2 {
		err = fmt.Errorf("expected 2 certificates (Coordinator, root), found %d", len(certs))
	}
	if err == nil {
		err = attested.CheckCoordinatorCert(certs[0], certs[1], at)
	}
	if err != nil {
		rep.add("certificates", CheckFailed, "%v", err)
		return skipRest("quote", "policy", "audit_head", "report_data", "manifest_file", "audit_log")
	}
	coord, root := certs[0], certs[1]
	rep.add("certificates", CheckOK, "Coordinator certificate issued by the deployment root (SHA-256 %s), valid at %s", fingerprint(root), at.Format(time.RFC3339))

	col, err := attest.DecodeCollateral(&resp.Collateral)
	var res *verify.Result
	if err == nil {
		sgxRoot := e.SGXRoot
		if sgxRoot == nil {
			sgxRoot = verify.IntelRoot()
		}
		res, err = verify.New(sgxRoot).Verify(resp.Quote, col, at)
	}
	if err != nil {
		rep.add("quote", CheckFailed, "%v", err)
		return skipRest("policy", "audit_head", "report_data", "manifest_file", "audit_log")
	}
	rep.add("quote", CheckOK, "genuine SGX quote, TCB status %s, collateral valid until %s", res.Platform.TCBStatus, res.Platform.CollateralExpiry.UTC().Format(time.RFC3339))

	// The identity and platform policy, with the report data it carries (checked next, apart).
	identityOK := true
	if err := e.Check(res, res.Enclave.ReportData[:]); err != nil {
		identityOK = false
		rep.add("policy", CheckFailed, "%v", err)
	} else if len(e.MREnclave) == 0 && e.MRSigner == nil {
		rep.add("policy", CheckSkipped, "no expected identity given: MRENCLAVE %x, compare it yourself", res.Enclave.MREnclave)
	} else {
		rep.add("policy", CheckOK, "MRENCLAVE %x, MRSIGNER %x, ISVPRODID %d, ISVSVN %d", res.Enclave.MREnclave, res.Enclave.MRSigner, res.Enclave.ISVProdID, res.Enclave.ISVSVN)
	}

	head := resp.AuditHead
	if err := head.Verify(root); err != nil {
		rep.add("audit_head", CheckFailed, "%v", err)
		return skipRest("report_data", "manifest_file", "audit_log")
	}
	rep.add("audit_head", CheckOK, "entry %d, hash %s, signed %s by the deployment root", head.Seq, head.Hash, head.Time.UTC().Format(time.RFC3339))

	nonce, _ := parseNonce(b.Nonce) // checked by ParseBundle
	rd := attest.CoordinatorReportData(coord.RawSubjectPublicKeyInfo, nonce, head.Seq, head.Hash)
	if !bytes.Equal(rd[:], res.Enclave.ReportData[:]) {
		rep.add("report_data", CheckFailed, "the quote's report data %x is not that of this TLS key, nonce and audit head (%x)", res.Enclave.ReportData, rd)
		return skipRest("manifest_file", "audit_log")
	}
	rep.add("report_data", CheckOK, "binds the Coordinator's TLS key, the nonce and audit head %d", head.Seq)
	if identityOK {
		rep.Verified = &Verified{
			Root: root, Coordinator: coord, Result: res, IdentityChecked: len(e.MREnclave) > 0 || e.MRSigner != nil,
			AuditHead: head, Response: resp, Nonce: nonce,
		}
	}

	switch d := sha256.Sum256(opts.Manifest); {
	case opts.Manifest == nil:
		rep.add("manifest_file", CheckSkipped, "no manifest file given")
	case b.ManifestDigest == "":
		rep.add("manifest_file", CheckFailed, "the bundle records no manifest (none was set when it was made)")
	case hex.EncodeToString(d[:]) != b.ManifestDigest:
		rep.add("manifest_file", CheckFailed, "the file's SHA-256 is %x; the bundle's manifest is %s", d, b.ManifestDigest)
	default:
		rep.add("manifest_file", CheckOK, "SHA-256 %s, manifest version %d", b.ManifestDigest, b.ManifestVersion)
	}

	if opts.Audit == nil {
		rep.add("audit_log", CheckSkipped, "no audit export given: the manifest digest is as the Coordinator reported it, not proven")
		return rep
	}
	entry, err := manifestEntryAt(opts.Audit, root, head)
	switch {
	case err != nil:
		rep.add("audit_log", CheckFailed, "%v", err)
	case entry == nil && b.ManifestDigest != "":
		rep.add("audit_log", CheckFailed, "no manifest entry at or before entry %d, but the bundle records manifest %s", head.Seq, b.ManifestDigest)
	case entry == nil:
		rep.add("audit_log", CheckOK, "the log extends the bundle's head; no manifest was set by then")
	case entry.Fields["manifest_sha256"] != b.ManifestDigest:
		rep.add("audit_log", CheckFailed, "entry %d (%s) set manifest %s; the bundle records %s", entry.Seq, entry.Kind, entry.Fields["manifest_sha256"], b.ManifestDigest)
	default:
		rep.ManifestEntry = entry
		rep.add("audit_log", CheckOK, "the log extends the bundle's head; entry %d (%s by %s at %s) set manifest version %s, SHA-256 %s",
			entry.Seq, entry.Kind, entry.Actor, entry.Time.Format(time.RFC3339), entry.Fields["version"], b.ManifestDigest)
	}
	return rep
}

// manifestEntryAt verifies an export against root, requiring it to pass through head, and
// returns its last manifest entry at or before head (nil if none). The export must start at
// entry 1: an earlier manifest entry could otherwise be left out.
func manifestEntryAt(r io.Reader, root *x509.Certificate, head *audit.Head) (*audit.Entry, error) {
	var last *audit.Entry
	rep, err := audit.Verify(r, audit.VerifyOptions{Root: root, Seen: head, OnEntry: func(e *audit.Entry) error {
		if e.Seq <= head.Seq && (e.Kind == audit.KindManifestSet || e.Kind == audit.KindManifestApply) {
			last = e
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	if rep.First != 1 {
		return nil, fmt.Errorf("the export starts at entry %d; export the whole log (from entry 1) to find the manifest", rep.First)
	}
	if last != nil {
		if _, err := strconv.Atoi(last.Fields["version"]); err != nil {
			return nil, fmt.Errorf("entry %d: no manifest version", last.Seq)
		}
	}
	return last, nil
}

func fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}
