package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/cloister-dev/cloister/store"
)

// maxInstanceLen bounds instance IDs, which become store keys and certificate fields.
const maxInstanceLen = 128

func validInstance(s string) bool {
	if s == "" || len(s) > maxInstanceLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Activate admits a workload instance: it verifies the instance's quote against the workload's
// package, binds it to the CSR key and to the TLS connection it arrived on (exporter), issues
// the workload certificate, renders its configuration and counts the activation against the
// workload's limit. Only an activation that succeeds is counted. A refusal is not logged here:
// the caller (the API) logs refusals, bounded in volume, since anyone can send them.
func (c *Core) Activate(ctx context.Context, req *api.ActivationRequest, exporter [32]byte) (*api.ActivationResponse, error) {
	resp, wl, err := c.activate(ctx, req, exporter)
	result := "ok"
	if err != nil {
		result = "error"
		if e, ok := errors.AsType[*Error](err); ok {
			result = e.Code
		}
	}
	c.metrics.activations.WithLabelValues(wl, result).Inc()
	if err != nil {
		c.counts.refused(wl, c.now(), result) // for the audit log; accepted ones are counted where they are
	}
	return resp, err
}

func (c *Core) activate(ctx context.Context, req *api.ActivationRequest, exporter [32]byte) (*api.ActivationResponse, string, error) {
	d := c.current()
	if d == nil {
		return nil, "unknown", notReady("no manifest has been set yet")
	}
	w, ok := d.m.Workloads[req.Workload]
	if !ok {
		return nil, "unknown", errorf(api.CodeUnknownWorkload, "unknown workload %s; the manifest defines %v", quoteBounded(req.Workload), slices.Sorted(maps.Keys(d.m.Workloads)))
	}
	wl := req.Workload
	if !validInstance(req.Instance) {
		return nil, wl, errorf(api.CodeBadRequest, "instance %s: expected 1 to %d characters of A-Z a-z 0-9 . _ -", quoteBounded(req.Instance), maxInstanceLen)
	}
	// The quote proves possession of the CSR's key better than the CSR's own signature could: it
	// binds the key's hash, and the attested enclave that made the quote made the key. So the
	// CSR is parsed strictly but its self-signature is not checked (which would double the cost of
	// an activation's signature checks).
	csr, err := pki.ParseCSRUnsigned(req.CSR)
	if err != nil {
		return nil, wl, errorf(api.CodeBadRequest, "csr: %w", err)
	}
	csrKey, csrSPKI := csr.PublicKey, csr.RawSubjectPublicKeyInfo
	requested, err := requestedDNS(d.m, wl, csr)
	if err != nil {
		return nil, wl, err
	}
	now := c.now()
	res, _, err := c.cfg.Verifier.Verify(ctx, req.Quote, now)
	if err != nil {
		return nil, wl, &Error{Code: api.CodeAttestation, Message: "quote not verified: " + err.Error(), Err: err}
	}
	pol := packagePolicy(d.m.Packages[w.Package])
	rd := attest.ActivationReportData(csrSPKI, exporter)
	pol.ReportData = rd[:]
	if err := pol.Check(res); err != nil {
		if pe, ok := errors.AsType[*verify.PolicyError](err); ok && pe.Field == verify.FieldReportData {
			err = fmt.Errorf("%w (a quote must bind the CSR key and this TLS connection; was it replayed or stolen?)", err)
		}
		return nil, wl, &Error{Code: api.CodePolicy, Message: fmt.Sprintf("workload %q (package %q): %v", wl, w.Package, err), Err: err}
	}
	// Everything that can fail comes before the activation is counted: a retry must not use
	// up max_activations.
	spiffe := d.m.SPIFFEID(wl)
	u, _ := url.Parse(spiffe)
	var ips []net.IP
	for _, ip := range w.TLS.IP {
		ips = append(ips, net.ParseIP(ip))
	}
	leaf, err := d.inter.IssueLeafDER(csrKey, pki.LeafConfig{
		CommonName:  wl,
		DNSNames:    dnsNames(w.TLS.DNS, requested),
		IPAddresses: ips,
		URIs:        []*url.URL{u},
		Validity:    d.m.Settings.WorkloadCertificateValidity.D(),
		NotBefore:   now,
	})
	if err != nil {
		return nil, wl, fmt.Errorf("issue workload certificate: %w", err)
	}
	// A file key that is not uploaded yet refuses with NOT_READY, which launchers retry.
	fileKeys, err := d.fileKeys(wl, w)
	if err != nil {
		return nil, wl, err
	}
	placeholder, err := newPlaceholder()
	if err != nil {
		return nil, wl, err
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}))
	chainPEM := certPEM + d.interPEM
	render := func(values map[string]manifest.SecretValue) (*manifest.Rendered, error) {
		out, err := d.m.Render(wl, manifest.RenderInput{
			Secrets:         values,
			Instance:        req.Instance,
			SPIFFEID:        spiffe,
			CertPEM:         certPEM,
			KeyPEM:          placeholder,
			ChainPEM:        chainPEM,
			RootPEM:         d.rootPEM,
			IntermediatePEM: d.interPEM,
		})
		if err != nil {
			// Every input was checked above, so what is left is content the templates cannot
			// take (a NUL in an environment value, output over the size limits): the manifest or
			// an uploaded value must change. Not NOT_READY, so launchers do not retry into the
			// limit.
			return nil, &Error{Code: api.CodeManifestInvalid, Message: "render configuration: " + err.Error(), Err: err}
		}
		return out, nil
	}
	out, count, err := c.commitActivation(ctx, d, wl, w, req.Instance, csrSPKI, render)
	if err != nil {
		return nil, wl, err
	}
	// The state version after the activation's own commit, if it made one: a launcher refuses a
	// later renewal from a state older than this (see launcher/supervise_renew.go).
	sv := c.db.Version()
	c.log.Info("workload activated", "workload", wl, "instance", req.Instance, "activation", count,
		"mrenclave", hex.EncodeToString(res.Enclave.MREnclave[:]), "tcb_status", string(res.Platform.TCBStatus),
		"manifest_version", d.version)
	return &api.ActivationResponse{
		CertificateChain: chainPEM,
		RootCA:           d.rootPEM,
		Files:            out.Files,
		Env:              out.Env,
		Argv:             out.Argv,
		KeyPlaceholder:   placeholder,
		FileKeys:         fileKeys,
		ManifestVersion:  d.version,
		Simulation:       c.cfg.Simulation,
		Exec:             w.Exec,
		ReloadSignal:     w.ReloadSignal,
		StateVersion:     sv.N,
		StateHash:        hex.EncodeToString(sv.Hash[:]),
	}, wl, nil
}

// newPlaceholder returns a random stand-in for the workload's private key in rendered
// templates. It is unguessable, so no secret value can contain it by accident or design.
func newPlaceholder() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "cloister-workload-key-" + hex.EncodeToString(b[:]), nil
}

// commitActivation renders the workload's configuration with the values of the secrets it
// uses and only then counts the activation: a refusal of any kind, a render failure included,
// must not use up max_activations. Per-instance symmetric keys are derived (see derive.go) or,
// for instances of earlier versions, read; per-instance certificates are read, or made and
// stored at the instance's first activation. Limited counts and new per-instance
// certificates are committed before it returns, in a store batch, so concurrent activations
// share one commit; other activations touch no disk (see counts), and read the store only
// for the per-instance values an earlier version stored.
//
// A limited activation whose key was counted a moment ago is a retry of that activation (see
// bucketRecentKeys): it is admitted as the same activation number, and counts nothing.
func (c *Core) commitActivation(ctx context.Context, d *deployment, name string, w manifest.Workload, instance string, spki []byte,
	render func(map[string]manifest.SecretValue) (*manifest.Rendered, error)) (*manifest.Rendered, uint64, error) {
	used := d.m.SecretsUsedBy(name)
	shared := make(map[string]manifest.SecretValue, len(used))
	var perInstance []string
	for _, sn := range used {
		s := d.m.Secrets[sn]
		switch {
		case s.Type == manifest.Plain:
		case s.PerInstance:
			perInstance = append(perInstance, sn)
		default:
			rec, ok := d.secrets[sn]
			if !ok {
				return nil, 0, notReady("secret %q has not been set yet; a user must upload it before workload %q can start", sn, name)
			}
			v, err := rec.value()
			if err != nil {
				return nil, 0, fmt.Errorf("secret %q: %w", sn, err)
			}
			shared[sn] = v
		}
	}
	if w.MaxActivations == 0 {
		values := shared
		if len(perInstance) > 0 {
			values = maps.Clone(shared)
			err := c.db.View(ctx, func(tx *store.Tx) error {
				if err := storedVersionIs(tx, d.version); err != nil {
					return err
				}
				return c.instanceValues(tx, d, name, instance, perInstance, values, false)
			})
			if errors.Is(err, errNotStored) {
				values = nil // a certificate to make: a write, below
			} else if err != nil {
				return nil, 0, err
			}
		}
		if values != nil {
			out, err := render(values)
			if err != nil {
				return nil, 0, err
			}
			if err := c.stillCurrent(d); err != nil {
				return nil, 0, err
			}
			return out, c.counts.add(name, c.now()), nil
		}
	}
	var (
		out     *manifest.Rendered
		count   uint64
		retried bool
	)
	now := c.now()
	// fn may run more than once (see store.DB.Batch); each run starts from the shared values.
	err := c.db.Batch(ctx, func(tx *store.Tx) error {
		count, retried = 0, false
		if err := storedVersionIs(tx, d.version); err != nil {
			return err
		}
		var rec *recent
		if w.MaxActivations > 0 {
			var err error
			if rec, err = readRecent(tx, name, instance, spki, now); err != nil {
				return err
			}
			retried = rec.counted()
			n, err := activationCount(tx, name)
			if err != nil {
				return err
			}
			n = max(n, c.counts.get(name))
			switch {
			case retried:
				count = n // the activation counted before; nothing more
			case n >= uint64(w.MaxActivations):
				return errorf(api.CodeActivationLimit, "workload %q reached its maximum of %d activations", name, w.MaxActivations)
			default:
				count = n + 1
			}
		}
		values := maps.Clone(shared)
		if err := c.instanceValues(tx, d, name, instance, perInstance, values, true); err != nil {
			return err
		}
		var err error
		if out, err = render(values); err != nil {
			return err // the transaction rolls back: no count, no new per-instance secret
		}
		if count > 0 && !retried {
			if err := tx.Put(bucketCounts, name, []byte(strconv.FormatUint(count, 10))); err != nil {
				return err
			}
			if err := rec.record(tx); err != nil {
				return err
			}
			// A limited activation is in the audit log's counts as durably as in the limit.
			return addPending(tx, keyOf(name, c.now()), activationCounts{activationAccepted: 1})
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if count > 0 {
		c.counts.committed(name, count)
	} else {
		count = c.counts.add(name, c.now())
	}
	return out, count, nil
}

// An activation is judged against the manifest that is current when it is admitted, not when it
// started: a manifest update (a raised min_isvsvn, a removed workload) must stop activations
// that were verifying evidence when it was set. Launchers retry NOT_READY and then meet the new
// manifest.

// stillCurrent refuses if the manifest version changed since d was taken.
func (c *Core) stillCurrent(d *deployment) error {
	if cur := c.current(); cur == nil || cur.version != d.version {
		return notReady("the manifest changed from version %d during the activation; retry", d.version)
	}
	return nil
}

// storedVersionIs refuses if the stored manifest version is not version: the store's writer
// lock orders this against the update that replaces it.
func storedVersionIs(tx *store.Tx, version int) error {
	b, err := tx.Get(bucketManifest, "current")
	if err != nil {
		return fmt.Errorf("read the current manifest version: %w", err)
	}
	if string(b) != strconv.Itoa(version) {
		return notReady("the manifest changed from version %d to %s during the activation; retry", version, b)
	}
	return nil
}

func activationCount(tx *store.Tx, workload string) (uint64, error) {
	b, err := tx.Get(bucketCounts, workload)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("state %s/%s is corrupt: %q is not a count", bucketCounts, workload, b)
	}
	return n, nil
}

// errNotStored is returned by instanceValues when a per-instance value must be made and
// stored, and it was not allowed to write.
var errNotStored = errors.New("a per-instance value is not stored yet")

// instanceValues adds to values the per-instance secrets names of one instance of a workload.
// The workload is part of every value's identity: instance IDs come from the host, and two
// workloads (perhaps of different trust) must never share a value by choosing the same ID. A
// value an earlier version stored for the same definition is served as it is; symmetric keys
// are derived otherwise; a certificate not stored yet is made and stored when create is set
// (tx must be writable), and otherwise errNotStored is returned.
func (c *Core) instanceValues(tx *store.Tx, d *deployment, workload, instance string, names []string, values map[string]manifest.SecretValue, create bool) error {
	for _, name := range names {
		s := d.m.Secrets[name]
		rec, err := storedInstanceSecret(tx, workload, name, s, instance)
		switch {
		case err != nil:
			return err
		case rec != nil:
		case derivable(s):
			v, err := c.derive.instanceKey(workload, name, s, instance)
			if err != nil {
				return err
			}
			values[name] = manifest.SecretValue{Bytes: v}
			continue
		case !create:
			return errNotStored
		default:
			if rec, err = newSecret(d.m, name, c.root, d.inter, c.now()); err != nil {
				return err
			}
			if err := recordIssued(tx, rec); err != nil {
				return err
			}
			if err := putJSON(tx, bucketInstances, instanceKey(workload, name, instance), rec); err != nil {
				return err
			}
		}
		v, err := rec.value()
		if err != nil {
			return fmt.Errorf("secret %q: %w", name, err)
		}
		values[name] = v
	}
	return nil
}

// instanceKey is the store key of a stored per-instance value.
func instanceKey(workload, name, instance string) string {
	return workload + "\x00" + name + "\x00" + instance
}

// storedInstanceSecret returns the stored per-instance value of secret name, defined as s, for
// one instance of workload, or nil if none is stored for that definition.
func storedInstanceSecret(tx *store.Tx, workload, name string, s manifest.Secret, instance string) (*secretRecord, error) {
	rec := &secretRecord{}
	err := getJSON(tx, bucketInstances, instanceKey(workload, name, instance), rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case rec.Spec != specOf(s):
		return nil, nil // pruned at the manifest update; replaced by a new value
	}
	return rec, nil
}

// fileKeySize is the size of a protected-file key.
const fileKeySize = 32

// fileKeys returns the keys of the workload's protected files, the secrets of its file_keys.
func (d *deployment) fileKeys(name string, w manifest.Workload) (map[string][]byte, error) {
	if len(w.FileKeys) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(w.FileKeys))
	for _, k := range w.FileKeys {
		rec, ok := d.secrets[k]
		if !ok {
			return nil, notReady("secret %q (a protected-file key of workload %q) has not been set yet", k, name)
		}
		if len(rec.Value) != fileKeySize {
			return nil, errorf(api.CodeNotReady, "secret %q holds %d bytes; a protected-file key has %d", k, len(rec.Value), fileKeySize)
		}
		out[k] = rec.Value
	}
	return out, nil
}
