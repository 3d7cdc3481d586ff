package controlplane

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const trustDomain = "e2e.cloister.test"

// deployment is the world of TestControlPlane: one Coordinator that every step shares, the
// apps it runs, its users, and what the steps observed.
type deployment struct {
	e     *env
	p     *sim.Platform
	co    *e2etest.Coordinator
	apps  map[string]*app
	users map[string]*e2etest.User

	v1, v2         []byte // manifest versions, as set
	v1Path, v2Path string

	// pinned deployment root and intermediates, as the CLI printed them
	root           *x509.Certificate
	inter1, inter2 *x509.Certificate

	// activations are the expected cloister_activations_total samples by workload and
	// result; a negative value means "at least one" (retries).
	activations map[[2]string]float64
	// secrets are every secret value the steps saw, for the log scan.
	secrets map[string]string
	// instanceKeys are the per-instance secret values the app instances received (hex).
	instanceKeys map[string]string
	userValue    string
}

func (d *deployment) expectActivation(workload, result string, n float64) {
	d.activations[[2]string{workload, result}] += n
}

// TestControlPlane runs one Coordinator through its life: verification and pinning, the
// first manifest, workload activations that succeed and that are refused for every reason,
// malformed API bodies, a secret that arrives late, operator roles, metrics, a restart with
// its state intact, a changed deployment root, and finally a scan of every log line for
// secrets. Steps run in order and stop at the first failure; each step depends on the ones
// before it.
func TestControlPlane(t *testing.T) {
	e := newEnv(t)
	d := &deployment{
		e:            e,
		p:            e.NewPlatform(t, "platform"),
		apps:         map[string]*app{},
		users:        map[string]*e2etest.User{},
		activations:  map[[2]string]float64{},
		secrets:      map[string]string{},
		instanceKeys: map[string]string{},
	}
	d.co = e.StartCoordinator(t, "coordinator", d.p, e.Path("data"), nil)
	d.prepare(t)

	for _, step := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"01_verify_and_pin", d.verifyAndPin},
		{"02_manifest_check", d.manifestCheck},
		{"03_first_manifest_tofu", d.firstManifest},
		{"04_happy_path", d.happyPath},
		{"05_exact_measurement", d.exactMeasurement},
		{"06_refused_through_launcher", d.refusedThroughLauncher},
		{"07_refused_hand_made_evidence", d.refusedHandMadeEvidence},
		{"08_bad_request_bodies", d.badBodies},
		{"09_not_ready_until_uploaded", d.notReadyUntilUploaded},
		{"10_manifest_update_roles", d.manifestUpdateRoles},
		{"11_secret_roles", d.secretRoles},
		{"12_metrics", d.checkMetrics},
		{"13_restart_keeps_state", d.restartKeepsState},
		{"14_root_change", d.rootChange},
		{"15_no_secrets_in_logs", d.noSecretsInLogs},
	} {
		if !t.Run(step.name, step.f) {
			t.Fatalf("step %s failed; the later steps depend on it", step.name)
		}
	}
}

// prepare makes the apps, users and manifests.
func (d *deployment) prepare(t *testing.T) {
	e := d.e
	for _, name := range []string{"app", "exact", "pinned", "svn", "limited", "needs-user"} {
		var edit func(*app, *enclave.Manifest)
		if name == "app" {
			// The app names the Coordinator it accepts: the measurement of this cloister build.
			mr := e.coordinatorMeasurement(t)
			edit = func(_ *app, m *enclave.Manifest) {
				m.Coordinator = &enclave.Coordinator{MRENCLAVE: []enclave.Digest{mr}}
			}
		}
		d.apps[name] = e.newApp(t, name, signer, edit)
	}
	d.apps["foreign"] = e.newApp(t, "foreign", otherSigner, nil)
	for _, name := range []string{"admin", "reader", "stranger"} {
		d.users[name] = e.NewUser(t, name)
	}
	d.v1Path, d.v2Path = e.Path("manifest-v1.json"), e.Path("manifest-v2.json")
	d.v1 = e2etest.WriteJSON(t, d.v1Path, d.manifest(t, "1"))
	d.v2 = e2etest.WriteJSON(t, d.v2Path, d.manifest(t, "2"))
}

// manifest is the deployment manifest; release differs between versions 1 and 2.
func (d *deployment) manifest(t *testing.T, release string) map[string]any {
	signerID := enclave.MRSigner(&signer.PublicKey)
	mrsigner := hex.EncodeToString(signerID[:])
	a := d.apps["app"]
	f := func(name string) string { return filepath.Join(a.filesDir, name) }
	exactMR := d.apps["exact"].mrenclave(t, d.e.Bins.Launcher)
	instanceEnv := map[string]string{"INSTANCE": "{{.Workload.Instance}}"}
	return map[string]any{
		"$schema":  "https://cloister.dev/schema/manifest-v1.json",
		"settings": map[string]any{"trust_domain": trustDomain},
		"packages": map[string]any{
			"signed":     map[string]any{"mrsigner": mrsigner, "isvprodid": 7, "min_isvsvn": 3},
			"exact":      map[string]any{"mrenclave": hex.EncodeToString(exactMR[:])},
			"svn5":       map[string]any{"mrsigner": mrsigner, "isvprodid": 7, "min_isvsvn": 5},
			"debuggable": map[string]any{"mrsigner": mrsigner, "isvprodid": 7, "min_isvsvn": 3, "debug": true},
		},
		"workloads": map[string]any{
			"app": map[string]any{
				"package": "signed",
				"tls":     map[string]any{"dns": []string{"app.e2e.test", "app"}, "ip": []string{"127.0.0.2"}},
				"env": map[string]string{
					"INSTANCE":   "{{.Workload.Instance}}",
					"SHARED_HEX": "{{.Secrets.shared.Hex}}",
					"SHARED_B64": "{{.Secrets.shared.Base64}}",
					"INST_HEX":   "{{.Secrets.inst.Hex}}",
					"OVERRIDDEN": "delivered",
					"SPIFFE":     "{{.Workload.SPIFFEID}}",
					"GREETING":   "{{.Secrets.greeting.Raw}}",
					"RELEASE":    release,
				},
				"files": map[string]string{
					f("key.pem"):    "{{.Workload.Key}}",
					f("cert.pem"):   "{{.Workload.Cert}}",
					f("chain.pem"):  "{{.Workload.Chain}}",
					f("root.pem"):   "{{.CA.Root}}",
					f("config.txt"): "token={{.Secrets.shared.Hex}}\ninstance={{.Workload.Instance}}\n",
					f("tls.pem"):    "{{.Secrets.tlscert.Cert}}{{.Secrets.tlscert.Key}}",
					f("bundle.pem"): "{{.Workload.Key}}{{.Workload.Cert}}",
				},
				"argv": []string{"sh", a.script, "from-deployment-manifest", "--instance={{.Workload.Instance}}"},
			},
			"exact":    map[string]any{"package": "exact", "env": instanceEnv},
			"pinned":   map[string]any{"package": "exact", "env": instanceEnv},
			"svn":      map[string]any{"package": "svn5", "env": instanceEnv},
			"foreign":  map[string]any{"package": "signed", "env": instanceEnv},
			"limited":  map[string]any{"package": "signed", "env": instanceEnv, "max_activations": 2},
			"dial":     map[string]any{"package": "signed", "env": map[string]string{"TOKEN": "{{.Secrets.shared.Hex}}"}},
			"debug-ok": map[string]any{"package": "debuggable"},
			"needs-user": map[string]any{
				"package": "signed", "env": instanceEnv, "max_activations": 1,
				"files": map[string]string{filepath.Join(d.apps["needs-user"].filesDir, "user.txt"): "{{.Secrets.user.Raw}}"},
			},
		},
		"secrets": map[string]any{
			"shared":   map[string]any{"type": "symmetric-key", "size": 256},
			"inst":     map[string]any{"type": "symmetric-key", "size": 128, "per_instance": true},
			"tlscert":  map[string]any{"type": "certificate", "dns": []string{"tls.e2e.test"}},
			"user":     map[string]any{"type": "user-defined", "max_size": 64},
			"greeting": map[string]any{"type": "plain", "value": "hello-plain"},
		},
		"users": map[string]any{
			"admin":  map[string]any{"certificate": d.users["admin"].CertPEM, "roles": []string{"manifest-admin", "secret-writer"}},
			"reader": map[string]any{"certificate": d.users["reader"].CertPEM, "roles": []string{"secret-reader"}},
		},
		"roles": map[string]any{
			"manifest-admin": map[string]any{"resource": "manifest", "actions": []string{"update"}},
			"secret-reader":  map[string]any{"resource": "secrets", "names": []string{"shared", "tlscert", "user", "inst", "greeting"}, "actions": []string{"read"}},
			"secret-writer":  map[string]any{"resource": "secrets", "names": []string{"user"}, "actions": []string{"write"}},
		},
	}
}

func (d *deployment) client() string { return d.co.Addrs.Client }

// conn are the CLI's flags to reach the Coordinator, optionally as a user.
func (d *deployment) conn(userName string) []string {
	f := []string{"--coordinator", d.client()}
	if userName != "" {
		f = append(f, d.users[userName].Flags()...)
	}
	return f
}

func (d *deployment) mustCLI(t *testing.T, userName string, args ...string) e2etest.CLIResult {
	t.Helper()
	return d.e.MustCLI(t, append(args, d.conn(userName)...)...)
}

func (d *deployment) cliFails(t *testing.T, userName string, want []string, args ...string) e2etest.CLIResult {
	t.Helper()
	return d.e.CLIFails(t, want, append(args, d.conn(userName)...)...)
}

func decodeOutput[T any](t *testing.T, r e2etest.CLIResult) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v\ndecode JSON output: %v", r, err)
	}
	return v
}

func parseCert(t *testing.T, what string, pemText string) *x509.Certificate {
	t.Helper()
	certs, err := pki.ParseCertsPEM([]byte(pemText))
	if err != nil || len(certs) != 1 {
		t.Fatalf("%s: expected one PEM certificate, found %d (%v):\n%s", what, len(certs), err, pemText)
	}
	return certs[0]
}

func (d *deployment) pinFile() string {
	name := strings.NewReplacer(":", "_").Replace(d.client())
	return filepath.Join(d.e.ConfigDir, "coordinators", name, "root.pem")
}

func fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

func (d *deployment) verifyAndPin(t *testing.T) {
	d.cliFails(t, "", []string{"coordinator " + d.client() + " has not been verified yet: run `cloister verify --coordinator " + d.client() + "` first"}, "status")

	// Without an expected identity (and without --simulation, which has one) nothing is pinned.
	d.cliFails(t, "", []string{"no expected Coordinator identity"}, "verify")
	// Without --simulation the CLI trusts Intel's root only.
	d.cliFails(t, "", []string{"coordinator NOT verified", "chain does not end in the pinned root key"}, "verify", "--insecure-accept-any-enclave")
	// A wrong expected measurement is named with the one found.
	wrong := sha256.Sum256([]byte("some other coordinator"))
	mr := d.e.coordinatorMeasurement(t)
	d.cliFails(t, "", []string{fmt.Sprintf("mrenclave %x not accepted; expected one of [%x]", mr, wrong)},
		"verify", "--simulation", d.p.Dir(), "--mrenclave", hex.EncodeToString(wrong[:]))
	if _, err := os.Stat(d.pinFile()); err == nil {
		t.Fatalf("a failed verification pinned a root in %s", d.pinFile())
	}

	out := decodeOutput[jsonoutput.Verify](t, d.mustCLI(t, "", "verify", "--simulation", d.p.Dir(), "--output", "json"))
	want := jsonoutput.Verify{
		Coordinator: d.client(), Verified: true, Simulation: true, IdentityChecked: true,
		MREnclave: hex.EncodeToString(mr[:]), MRSigner: hex.EncodeToString(attest.SimCoordinatorSigner[:]),
		ISVProdID: attest.CoordinatorProdID, ISVSVN: attest.CoordinatorSVN, TCBStatus: "UpToDate",
		AdvisoryIDs: []string{}, PinnedAt: d.pinFile(),
	}
	got := out
	got.CollateralExpiry, got.RootFingerprint = "", ""
	if h := got.AuditHead; h.Seq < 1 || len(h.Hash) != 64 || len(h.Signature) == 0 {
		t.Errorf("verify --output json: audit head %+v; want the signed head of the Coordinator's log", h)
	}
	got.AuditHead = jsonoutput.AuditHead{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verify --output json (-want +got):\n%s", diff)
	}
	pinned, err := os.ReadFile(d.pinFile())
	if err != nil {
		t.Fatalf("verify did not pin the root: %v", err)
	}
	d.root = parseCert(t, "pinned root", string(pinned))
	if fp := fingerprint(d.root); fp != out.RootFingerprint {
		t.Errorf("pinned root has SHA-256 %s; verify reported %s", fp, out.RootFingerprint)
	}
	if !pki.IsSimulation(d.root) {
		t.Errorf("the deployment root of a simulated Coordinator is not marked as simulation: %s", d.root.Subject)
	}
	// Verifying again with the same root keeps the pin and says it is simulated.
	r := d.mustCLI(t, "", "verify", "--simulation", d.p.Dir())
	for _, w := range []string{"Coordinator " + d.client() + " verified.", "WARNING: it runs in SIMULATION mode", "root SHA-256 " + out.RootFingerprint} {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("verify output does not say %q:\n%s", w, r.Stdout)
		}
	}
}

func (d *deployment) manifestCheck(t *testing.T) {
	bad := d.manifest(t, "1")
	wl := bad["workloads"].(map[string]any)
	wl["exact"].(map[string]any)["package"] = "nope"
	wl["dial"].(map[string]any)["env"] = map[string]string{"TOKEN": "{{.Secrets.tokn.Hex}}"}
	bad["secrets"].(map[string]any)["shared"] = map[string]any{"type": "symmetric-key", "size": 250}
	bad["roles"].(map[string]any)["secret-writer"] = map[string]any{"resource": "secrets", "names": []string{"user", "shared"}, "actions": []string{"read", "write"}}
	badPath := d.e.Path("manifest-bad.json")
	e2etest.WriteJSON(t, badPath, bad)
	wantProblems := map[string]string{
		"$.workloads.exact.package":             `unknown package "nope"; defined packages: debuggable, exact, signed, svn5`,
		"$.workloads.dial.env.TOKEN":            `template references undefined secret "tokn"`,
		"$.secrets.shared.size":                 "expected a key size in bits that is a multiple of 8 from 128 to 4096, found 250",
		"$.roles[\"secret-writer\"].actions[1]": `expected only user-defined secrets with action "write", found shared (symmetric-key)`,
	}

	r := d.e.CLI(t, "manifest", "check", badPath)
	if r.Code != 1 {
		t.Errorf("%v\nwant exit code 1 for an invalid manifest", r)
	}
	for p, msg := range wantProblems {
		if !strings.Contains(r.Stdout, "  "+p+": ") || !strings.Contains(r.Stdout, msg) {
			t.Errorf("manifest check does not report %s: %s:\n%s", p, msg, r.Stdout)
		}
	}
	r = d.e.CLI(t, "manifest", "check", badPath, "--output", "json")
	if r.Code != 1 {
		t.Errorf("%v\nwant exit code 1 for an invalid manifest", r)
	}
	out := decodeOutput[jsonoutput.ManifestCheck](t, r)
	if out.Valid || out.Digest != "" {
		t.Errorf("manifest check --output json: valid %v, digest %q; want false and none", out.Valid, out.Digest)
	}
	found := map[string]string{}
	for _, p := range out.Problems {
		found[p.Path] = p.Message
	}
	for p, msg := range wantProblems {
		if !strings.Contains(found[p], msg) {
			t.Errorf("manifest check --output json: problem at %s is %q, want it to say %q; all: %v", p, found[p], msg, out.Problems)
		}
	}
	if len(out.Problems) != len(wantProblems) {
		t.Errorf("manifest check found %d problems, want %d: %+v", len(out.Problems), len(wantProblems), out.Problems)
	}

	r = d.e.MustCLI(t, "manifest", "check", d.v1Path)
	if want := fmt.Sprintf("%s is valid (SHA-256 %x).", d.v1Path, sha256.Sum256(d.v1)); !strings.Contains(r.Stdout, want) {
		t.Errorf("manifest check of a valid manifest says %q, want %q", r.Stdout, want)
	}
}

// ignoreActivations leaves the activation counts out of a comparison of statuses: launchers
// still running may activate again at any time.
var ignoreActivations = cmpopts.IgnoreFields(jsonoutput.Status{}, "Activations")

// status returns the Coordinator's status without its audit head and state version, which
// change with every change of state (audit_test.go and rollback_test.go check them), after
// checking that there are a signed head and a version.
func (d *deployment) status(t *testing.T) jsonoutput.Status {
	t.Helper()
	s := decodeOutput[jsonoutput.Status](t, d.mustCLI(t, "", "status", "--output", "json"))
	if h := s.AuditHead; h == nil || h.Seq < 1 || len(h.Signature) == 0 {
		t.Errorf("status: audit head %+v; want the signed head of the Coordinator's log", h)
	}
	if s.StateVersion < 1 || len(s.StateHash) != 64 {
		t.Errorf("status: state version %d, hash %q; want the store's version and its 64-hex-digit hash", s.StateVersion, s.StateHash)
	}
	s.AuditHead, s.StateVersion, s.StateHash = nil, 0, ""
	return s
}

func (d *deployment) firstManifest(t *testing.T) {
	if got, want := d.status(t), (jsonoutput.Status{
		State: api.StateWaitingForManifest, Simulation: true, TEE: "sgx-simulation", Version: "0.1.0",
		Message: "SIMULATION MODE: not secure; anyone with the simulated platform can forge its evidence",
	}); !cmp.Equal(got, want, cmpopts.EquateEmpty()) {
		t.Errorf("status before the first manifest:\n got %+v\nwant %+v", got, want)
	}
	d.cliFails(t, "", []string{"coordinator refused (NOT_READY): no intermediate CA yet: it is created with the first manifest"}, "certificate", "intermediate")
	d.cliFails(t, "", []string{"coordinator refused (NOT_READY): no manifest has been set yet"}, "manifest", "get")

	// Trust on first use: anyone who reached the verified Coordinator sets the first manifest.
	res := decodeOutput[jsonoutput.ManifestSet](t, d.mustCLI(t, "", "manifest", "set", d.v1Path, "--output", "json"))
	digest := fmt.Sprintf("%x", sha256.Sum256(d.v1))
	if want := (jsonoutput.ManifestSet{Version: 1, Digest: digest}); res.Version != want.Version || res.Digest != want.Digest || res.RecoveryShares != nil {
		t.Errorf("manifest set = %+v, want %+v", res, want)
	}
	st := d.status(t)
	if st.State != api.StateRunning || st.ManifestVersion != 1 || st.ManifestDigest != digest {
		t.Errorf("status after the first manifest: %+v; want running, version 1, digest %s", st, digest)
	}
	r := d.mustCLI(t, "", "status")
	for _, w := range []string{"state             running", "manifest version  1", "manifest SHA-256  " + digest, "TEE               sgx-simulation", "SIMULATION MODE"} {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("status output does not say %q:\n%s", w, r.Stdout)
		}
	}
	if got := d.mustCLI(t, "", "manifest", "get").Stdout; got != string(d.v1) {
		t.Errorf("manifest get printed %d bytes that differ from the %d bytes set", len(got), len(d.v1))
	}
	d.inter1 = d.checkCertificates(t)
}

// checkCertificates checks `cloister certificate root|intermediate|chain` and returns the
// current intermediate.
func (d *deployment) checkCertificates(t *testing.T) *x509.Certificate {
	t.Helper()
	rootPEM := d.mustCLI(t, "", "certificate", "root").Stdout
	if root := parseCert(t, "certificate root", rootPEM); !root.Equal(d.root) {
		t.Errorf("certificate root prints %s, not the pinned root %s", fingerprint(root), fingerprint(d.root))
	}
	interPEM := d.mustCLI(t, "", "certificate", "intermediate").Stdout
	inter := parseCert(t, "certificate intermediate", interPEM)
	if err := inter.CheckSignatureFrom(d.root); err != nil || !inter.IsCA {
		t.Errorf("the intermediate is not a CA issued by the root: is CA %v, %v", inter.IsCA, err)
	}
	if chain := d.mustCLI(t, "", "certificate", "chain").Stdout; chain != interPEM+rootPEM {
		t.Errorf("certificate chain is not the intermediate then the root:\n%s", chain)
	}
	return inter
}

// checkApp checks what an app instance saw: argv, environment, working directory and the
// delivered files, on disk (0600) and as the program read them.
func (d *deployment) checkApp(t *testing.T, s *seen, instance, release string, inter *x509.Certificate) {
	t.Helper()
	a := d.apps["app"]
	if want := []string{"sh", a.script, "from-deployment-manifest", "--instance=" + instance}; !slices.Equal(s.argv, want) {
		t.Errorf("argv = %q, want the deployment manifest's %q (not the enclave manifest's %q)", s.argv, want, a.manifest.Argv)
	}
	if s.cwd != a.dir {
		t.Errorf("working directory = %s, want %s", s.cwd, a.dir)
	}
	if v, ok := s.env["FORBIDDEN_VAR"]; ok {
		t.Errorf("host variable FORBIDDEN_VAR=%q reached the application; allow_env does not admit it", v)
	}
	wantEnv := map[string]string{
		"OUT_DIR": a.outDir, "FILES_DIR": a.filesDir, "PATH": "/usr/bin:/bin", "FIXED_VAR": "fixed",
		"OVERRIDDEN": "delivered", "ALLOWED_VAR": "from-host", "LC_E2E": "from-host-lc",
		"INSTANCE": instance, "SPIFFE": "spiffe://" + trustDomain + "/app", "GREETING": "hello-plain", "RELEASE": release,
	}
	// HOME comes from the passwd entry of the user the app runs as, as runc gives it.
	if u, err := user.Current(); err == nil {
		wantEnv["HOME"] = u.HomeDir
	}
	for _, k := range []string{"SHARED_HEX", "SHARED_B64", "INST_HEX"} {
		wantEnv[k] = s.env[k] // checked below
	}
	if diff := cmp.Diff(wantEnv, s.env); diff != "" {
		t.Errorf("application environment (-want +got):\n%s", diff)
	}
	shared, err := hex.DecodeString(s.env["SHARED_HEX"])
	if err != nil || len(shared) != 32 {
		t.Errorf("SHARED_HEX = %q: expected 64 hex digits of a 256-bit key", s.env["SHARED_HEX"])
	}
	if b64 := base64.StdEncoding.EncodeToString(shared); s.env["SHARED_B64"] != b64 {
		t.Errorf("SHARED_B64 = %q, want the base64 of SHARED_HEX, %q", s.env["SHARED_B64"], b64)
	}
	if inst, err := hex.DecodeString(s.env["INST_HEX"]); err != nil || len(inst) != 16 {
		t.Errorf("INST_HEX = %q: expected 32 hex digits of a 128-bit key", s.env["INST_HEX"])
	}

	wantFiles := []string{"bundle.pem", "cert.pem", "chain.pem", "config.txt", "key.pem", "root.pem", "tls.pem"}
	if got := slices.Sorted(maps.Keys(s.files)); !slices.Equal(got, wantFiles) {
		t.Fatalf("the application saw files %q, want %q", got, wantFiles)
	}
	for _, name := range wantFiles {
		p := filepath.Join(a.filesDir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("%s has mode %v, want -rw------- (0600)", p, fi.Mode())
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, s.files[name]) {
			t.Errorf("%s on disk differs from what the application read (%v)", p, err)
		}
	}
	for name, b := range s.files {
		if bytes.Contains(b, []byte("cloister-workload-key-")) {
			t.Errorf("%s still holds the key placeholder", name)
		}
	}
	if want := "token=" + s.env["SHARED_HEX"] + "\ninstance=" + instance + "\n"; string(s.files["config.txt"]) != want {
		t.Errorf("config.txt = %q, want %q", s.files["config.txt"], want)
	}

	key, err := pki.ParseKeyPEM(s.files["key.pem"])
	if err != nil {
		t.Fatalf("key.pem is not the workload's private key: %v", err)
	}
	leaf := parseCert(t, "cert.pem", string(s.files["cert.pem"]))
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Errorf("key.pem does not belong to the workload certificate")
	}
	if want := string(s.files["key.pem"]) + string(s.files["cert.pem"]); string(s.files["bundle.pem"]) != want {
		t.Errorf("bundle.pem is not the workload key followed by its certificate")
	}
	chain, err := pki.ParseCertsPEM(s.files["chain.pem"])
	if err != nil || len(chain) != 2 || !chain[0].Equal(leaf) || !chain[1].Equal(inter) {
		t.Errorf("chain.pem is not the workload certificate then the current intermediate (%d certificates, %v)", len(chain), err)
	}
	if root := parseCert(t, "root.pem", string(s.files["root.pem"])); !root.Equal(d.root) {
		t.Errorf("root.pem is not the pinned deployment root")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(d.root)
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the workload certificate does not chain to the deployment root: %v", err)
	}
	var uris []string
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if want := []string{"spiffe://" + trustDomain + "/app"}; !slices.Equal(uris, want) {
		t.Errorf("workload certificate URIs = %q, want the SPIFFE ID %q", uris, want)
	}
	if want := []string{"app.e2e.test", "app"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("workload certificate DNS names = %q, want %q from the manifest", leaf.DNSNames, want)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.2")) {
		t.Errorf("workload certificate IP addresses = %v, want [127.0.0.2] from the manifest", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "app" {
		t.Errorf("workload certificate common name %q, want %q", leaf.Subject.CommonName, "app")
	}

	d.secrets["shared (hex)"] = s.env["SHARED_HEX"]
	d.secrets["shared (base64)"] = s.env["SHARED_B64"]
	d.secrets["inst "+instance+" (hex)"] = s.env["INST_HEX"]
	inst, _ := hex.DecodeString(s.env["INST_HEX"])
	d.secrets["inst "+instance+" (base64)"] = base64.StdEncoding.EncodeToString(inst)
	d.secrets[fmt.Sprintf("workload key of %s (launch %d)", instance, len(d.secrets))] = string(s.files["key.pem"])
	tlsKey := string(s.files["tls.pem"])
	d.secrets["tlscert private key"] = tlsKey[strings.Index(tlsKey, "-----BEGIN PRIVATE KEY-----"):]
}

func (d *deployment) launch(instance string) launchOpts {
	return launchOpts{instance: instance, mesh: d.co.Addrs.Mesh, simDir: d.p.Dir()}
}

func (d *deployment) happyPath(t *testing.T) {
	a := d.apps["app"]
	s1 := d.e.mustLaunch(t, a, d.launch("i1"))
	d.checkApp(t, s1, "i1", "1", d.inter1)
	s2 := d.e.mustLaunch(t, a, d.launch("i2"))
	d.checkApp(t, s2, "i2", "1", d.inter1)
	// The same instance again, through `cloister launch` this time.
	o := d.launch("i1-again")
	o.viaCLI = true
	// The script reports by INSTANCE; run instance i1 into its own report directory by
	// renaming the first report.
	if err := os.Rename(filepath.Join(a.outDir, "i1"), filepath.Join(a.outDir, "i1-first")); err != nil {
		t.Fatal(err)
	}
	o.instance = "i1"
	s3 := d.e.mustLaunch(t, a, o)
	d.checkApp(t, s3, "i1", "1", d.inter1)
	d.expectActivation("app", "ok", 3)

	if s1.env["INST_HEX"] == s2.env["INST_HEX"] {
		t.Errorf("instances i1 and i2 got the same per-instance secret")
	}
	if s1.env["INST_HEX"] != s3.env["INST_HEX"] {
		t.Errorf("instance i1 got per-instance secret %s… first and %s… the second time; want the same",
			s1.env["INST_HEX"][:8], s3.env["INST_HEX"][:8])
	}
	for _, s := range []*seen{s2, s3} {
		if s.env["SHARED_HEX"] != s1.env["SHARED_HEX"] {
			t.Errorf("instances got different values of the shared secret")
		}
		if string(s.files["tls.pem"]) != string(s1.files["tls.pem"]) {
			t.Errorf("instances got different values of the shared certificate secret")
		}
		if bytes.Equal(s.files["key.pem"], s1.files["key.pem"]) {
			t.Errorf("two launches have the same workload key; each must make its own")
		}
	}
	d.instanceKeys["i1"], d.instanceKeys["i2"] = s1.env["INST_HEX"], s2.env["INST_HEX"]
}

func (d *deployment) exactMeasurement(t *testing.T) {
	// The package pins the MRENCLAVE the test computed from the launcher binary and the
	// signed enclave manifest: the launcher measures itself the documented way.
	d.e.mustLaunch(t, d.apps["exact"], d.launch("e1"))
	d.expectActivation("exact", "ok", 1)
}

func (d *deployment) refusedThroughLauncher(t *testing.T) {
	signerID := enclave.MRSigner(&signer.PublicKey)
	otherID := enclave.MRSigner(&otherSigner.PublicKey)
	for _, tc := range []struct {
		name     string
		app      string
		workload string
		want     []string
	}{{
		name: "wrong MRENCLAVE", app: "pinned",
		want: []string{"coordinator refused (POLICY_REJECTED)", `workload "pinned" (package "exact")`,
			fmt.Sprintf("mrenclave %x not accepted; expected one of [%x]", d.apps["pinned"].mrenclave(t, d.e.Bins.Launcher), d.apps["exact"].mrenclave(t, d.e.Bins.Launcher))},
	}, {
		name: "wrong signer", app: "foreign",
		want: []string{"coordinator refused (POLICY_REJECTED)", fmt.Sprintf("mrsigner %x not accepted; expected %x", otherID, signerID)},
	}, {
		name: "ISVSVN below min_isvsvn", app: "svn",
		want: []string{"coordinator refused (POLICY_REJECTED)", `workload "svn" (package "svn5")`, "isvsvn 3 not accepted; expected at least 5"},
	}, {
		name: "unknown workload", app: "app", workload: "ghost",
		want: []string{`coordinator refused (UNKNOWN_WORKLOAD): unknown workload "ghost"; the manifest defines [app debug-ok dial exact foreign limited needs-user pinned svn]`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			o := d.launch("r1")
			o.workload = tc.workload
			d.e.launchFails(t, d.apps[tc.app], o, tc.want...)
		})
	}
	d.expectActivation("pinned", "POLICY_REJECTED", 1)
	d.expectActivation("foreign", "POLICY_REJECTED", 1)
	d.expectActivation("svn", "POLICY_REJECTED", 1)
	d.expectActivation("unknown", "UNKNOWN_WORKLOAD", 1)

	t.Run("maximum activations", func(t *testing.T) {
		a := d.apps["limited"]
		d.e.mustLaunch(t, a, d.launch("l1"))
		d.e.mustLaunch(t, a, d.launch("l2"))
		d.e.launchFails(t, a, d.launch("l3"), `coordinator refused (ACTIVATION_LIMIT): workload "limited" reached its maximum of 2 activations`)
	})
	d.expectActivation("limited", "ok", 2)
	d.expectActivation("limited", "ACTIVATION_LIMIT", 1)
}

func (d *deployment) badBodies(t *testing.T) {
	before := d.status(t)
	big := func(n int) []byte { return append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), n), `"}`...)...) }
	admin := d.users["admin"]
	type tc struct {
		name       string
		body       []byte
		status     int
		code, want string
	}
	// wants are the messages of a route for: malformed JSON, an unknown field, trailing data.
	bodyCases := func(limit int, wants [3]string, status int, code string) []tc {
		return []tc{
			{"malformed JSON", []byte(`{"settings":`), status, code, wants[0]},
			{"unknown field", []byte(`{"bogus":1}`), status, code, wants[1]},
			{"trailing data", []byte(`{} {}`), status, code, wants[2]},
			{"oversized", big(limit), 413, api.CodePayloadTooLarge, fmt.Sprintf("request body is larger than the %d bytes allowed", limit)},
		}
	}
	// API bodies are decoded strictly, as manifests are; the messages name the JSON path.
	strict := func(keys string) [3]string {
		return [3]string{"; $: expected more JSON, found the end of the document",
			`request body: $.bogus: unknown key "bogus"; expected one of: ` + keys,
			"request body: $: expected nothing after the JSON value, found more data at byte 2"}
	}
	for _, ep := range []struct {
		name, addr, path string
		user             *e2etest.User
		cases            []tc
	}{{
		name: "activate", addr: d.co.Addrs.Mesh, path: api.PathActivate,
		cases: append(bodyCases(256<<10, strict("workload, instance, quote, csr"), 400, api.CodeBadRequest),
			tc{"wrong type", []byte(`{"workload":5}`), 400, api.CodeBadRequest, "request body: $.workload: expected a string, found a number"},
			tc{"empty", nil, 400, api.CodeBadRequest, "request body: $: expected more JSON, found the end of the document"}),
	}, {
		name: "secrets", addr: d.client(), path: api.PathSecrets, user: admin,
		cases: append(bodyCases(4<<20, strict("secrets"), 400, api.CodeBadRequest),
			tc{"wrong type", []byte(`{"secrets":{"user":5}}`), 400, api.CodeBadRequest, "request body: $.secrets.user: expected a base64 string, found a number"}),
	}, {
		// A manifest body is the manifest itself: the Coordinator reports what is wrong
		// with it at its JSON path.
		name: "manifest", addr: d.client(), path: api.PathManifest, user: admin,
		cases: append(bodyCases(4<<20, [3]string{
			"manifest rejected: $.settings: expected more JSON, found the end of the document",
			`manifest rejected: $.bogus: unknown key "bogus"; expected one of: $schema, settings, packages, workloads, secrets, users, roles`,
			"manifest rejected: $: expected nothing after the manifest object, found more data at byte 2",
		}, 422, api.CodeManifestInvalid),
			tc{"empty", nil, 422, api.CodeManifestInvalid, "manifest rejected: $: expected more JSON, found the end of the document"}),
	}} {
		for _, c := range ep.cases {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				status, eb := post(t, ep.addr, ep.path, c.body, ep.user)
				if status != c.status || eb.Code != c.code || !strings.Contains(eb.Message, c.want) {
					t.Errorf("POST %s with %s: %d %s %q; want %d %s with %q", ep.path, c.name, status, eb.Code, eb.Message, c.status, c.code, c.want)
				}
				if strings.Contains(eb.Message, "aaaaaaaa") {
					t.Errorf("the error echoes the request body: %q", eb.Message)
				}
			})
		}
	}
	if after := d.status(t); !cmp.Equal(after, before, ignoreActivations) {
		t.Errorf("bad request bodies changed the Coordinator's state: %+v, then %+v", before, after)
	}
}

func (d *deployment) notReadyUntilUploaded(t *testing.T) {
	a := d.apps["needs-user"]
	o := d.launch("n1")
	o.retry = "60s"
	p := d.e.startLaunch(t, a, o)
	e2etest.WaitFor(t, e2etest.RunTimeout, "the launcher to be told NOT_READY and retry", func() (bool, string) {
		out := p.Output()
		if p.Exited() {
			t.Fatalf("the launcher exited (%v) instead of retrying:\n%s", p.Err(), out)
		}
		return strings.Contains(out, "retrying") && strings.Contains(out, "NOT_READY") &&
			strings.Contains(out, `secret \"user\" has not been set yet`), out
	})
	if a.ran("n1") {
		t.Fatalf("the application ran before its secret was uploaded")
	}
	d.userValue = "user-defined-value-" + rand.Text()[:16]
	valueFile := d.e.Path("user-value.txt")
	e2etest.WriteFile(t, valueFile, []byte(d.userValue), 0o600)
	r := d.mustCLI(t, "admin", "secret", "set", "user", "--file", valueFile)
	if want := fmt.Sprintf("Secret user set (%d bytes).", len(d.userValue)); !strings.Contains(r.Stdout, want) {
		t.Errorf("secret set says %q, want %q", r.Stdout, want)
	}
	if code := p.Wait(t, e2etest.RunTimeout); code != 0 {
		t.Fatalf("the launcher exited with %d after the secret was uploaded, want 0:\n%s", code, p.Output())
	}
	// The workload may activate once (max_activations 1): the refusals while the secret was
	// missing did not use that activation up.
	if got := string(a.result(t, "n1").files["user.txt"]); got != d.userValue {
		t.Errorf("user.txt = %q, want the uploaded value", got)
	}
	d.secrets["user-defined value"] = d.userValue
	d.expectActivation("needs-user", "NOT_READY", -1)
	d.expectActivation("needs-user", "ok", 1)
}

func (d *deployment) manifestUpdateRoles(t *testing.T) {
	d.cliFails(t, "", []string{"coordinator refused (UNAUTHENTICATED): a manifest is already set; updating it needs a client certificate of a user with the manifest update role"},
		"manifest", "set", d.v2Path)
	d.cliFails(t, "stranger", []string{`coordinator refused (UNAUTHENTICATED): client certificate "stranger"`, "belongs to no user of the manifest"},
		"manifest", "set", d.v2Path)
	d.cliFails(t, "reader", []string{`coordinator refused (FORBIDDEN): user "reader" has no role that grants update on the manifest`},
		"manifest", "set", d.v2Path)
	if st := d.status(t); st.ManifestVersion != 1 {
		t.Fatalf("refused updates changed the manifest version to %d", st.ManifestVersion)
	}
	r := d.mustCLI(t, "admin", "manifest", "set", d.v2Path)
	if want := fmt.Sprintf("Manifest version 2 set (SHA-256 %x).", sha256.Sum256(d.v2)); !strings.Contains(r.Stdout, want) {
		t.Errorf("manifest set says %q, want %q", r.Stdout, want)
	}
	d.inter2 = d.checkCertificates(t)
	if d.inter2.Equal(d.inter1) {
		t.Errorf("manifest version 2 kept the intermediate of version 1; each version gets its own")
	}
	// The new version is in force for new activations; unchanged secrets carried over.
	a := d.apps["app"]
	s := d.e.mustLaunch(t, a, d.launch("i3"))
	d.checkApp(t, s, "i3", "2", d.inter2)
	d.expectActivation("app", "ok", 1)
	if s.env["SHARED_HEX"] != d.secrets["shared (hex)"] {
		t.Errorf("the shared secret changed with a manifest update that did not change its definition")
	}
}

func (d *deployment) secretRoles(t *testing.T) {
	r := d.e.CLISecrets(t, append([]string{"secret", "get", "shared", "tlscert", "user", "greeting", "--output", "json"}, d.conn("reader")...)...)
	if r.Code != 0 {
		t.Fatalf("%v\nwant exit code 0", r)
	}
	got := decodeOutput[jsonoutput.Secrets](t, r)
	if hex.EncodeToString(got["shared"].Value) != d.secrets["shared (hex)"] {
		t.Errorf("secret get shared differs from what the workloads received")
	}
	if string(got["user"].Value) != d.userValue || string(got["greeting"].Value) != "hello-plain" {
		t.Errorf("secret get: user %q, greeting %q; want the uploaded value and hello-plain", got["user"].Value, got["greeting"].Value)
	}
	if tc := got["tlscert"]; !strings.Contains(d.secrets["tlscert private key"], strings.TrimSpace(tc.PrivateKey)) || tc.Certificate == "" {
		t.Errorf("secret get tlscert does not give the certificate and key the workloads received")
	}
	r = d.e.CLISecrets(t, append([]string{"secret", "get", "user"}, d.conn("reader")...)...)
	if want := "user: " + d.userValue + "\n"; r.Code != 0 || r.Stdout != want {
		t.Errorf("secret get user (text) = %q (exit %d), want %q", r.Stdout, r.Code, want)
	}

	valueFile := d.e.Path("too-long.txt")
	e2etest.WriteFile(t, valueFile, bytes.Repeat([]byte("x"), 65), 0o600)
	for _, tc := range []struct {
		name string
		user string
		args []string
		want string
	}{
		{"anonymous read", "", []string{"get", "shared"}, "coordinator refused (UNAUTHENTICATED): reading secrets needs a client certificate of a manifest user"},
		{"read without the role", "admin", []string{"get", "shared"}, `coordinator refused (FORBIDDEN): user "admin" has no role that grants read on secret "shared"`},
		{"read a per-instance secret", "reader", []string{"get", "inst"}, `coordinator refused (BAD_REQUEST): secret "inst" is per instance; only workload instances receive it`},
		{"read an undefined secret", "reader", []string{"get", "nope"}, `coordinator refused (NOT_FOUND): secret "nope" is not defined; defined secrets: [greeting inst shared tlscert user]`},
		{"anonymous write", "", []string{"set", "user", "--value", "x"}, "coordinator refused (UNAUTHENTICATED): setting secrets needs a client certificate of a manifest user"},
		{"write without the role", "reader", []string{"set", "user", "--value", "x"}, `coordinator refused (FORBIDDEN): user "reader" has no role that grants write on secret "user"`},
		{"write a generated secret", "admin", []string{"set", "shared", "--hex", "00112233"}, `coordinator refused (BAD_REQUEST): secret "shared" is of type symmetric-key; only user-defined secrets can be set`},
		{"write an undefined secret", "admin", []string{"set", "nope", "--value", "x"}, `coordinator refused (NOT_FOUND): secret "nope" is not defined`},
		{"write more than max_size", "admin", []string{"set", "user", "--file", valueFile}, `coordinator refused (BAD_REQUEST): secret "user": value of 65 bytes; expected 1 to 64 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.cliFails(t, tc.user, []string{tc.want}, append([]string{"secret"}, tc.args...)...)
		})
	}
	r = d.e.CLISecrets(t, append([]string{"secret", "get", "user", "--output", "json"}, d.conn("reader")...)...)
	if v := decodeOutput[jsonoutput.Secrets](t, r)["user"].Value; string(v) != d.userValue {
		t.Errorf("refused writes changed the user-defined secret to %q", v)
	}
}

func (d *deployment) checkMetrics(t *testing.T) {
	m := d.co.Metrics(t)
	for k, want := range d.activations {
		s := e2etest.Series("cloister_activations_total", "result", k[1], "workload", k[0])
		got, ok := m[s]
		switch {
		case !ok:
			t.Errorf("metrics have no %s", s)
		case want < 0 && got < 1:
			t.Errorf("%s = %v, want at least 1", s, got)
		case want >= 0 && got != want:
			t.Errorf("%s = %v, want %v", s, got, want)
		}
	}
	// Hand-made evidence (step 07) went through the same counter.
	for s := range m {
		if !strings.HasPrefix(s, "cloister_activations_total{") {
			continue
		}
		known := false
		for k := range d.activations {
			known = known || s == e2etest.Series("cloister_activations_total", "result", k[1], "workload", k[0])
		}
		if !known {
			t.Errorf("unexpected activation series %s = %v", s, m[s])
		}
	}
	for s, want := range map[string]float64{
		e2etest.Series("cloister_api_requests_total", "api", "mesh", "code", "413", "route", "POST "+api.PathActivate):   1,
		e2etest.Series("cloister_api_requests_total", "api", "mesh", "code", "400", "route", "POST "+api.PathActivate):   5,
		e2etest.Series("cloister_api_requests_total", "api", "client", "code", "401", "route", "POST "+api.PathManifest): 2,
		e2etest.Series("cloister_api_requests_total", "api", "client", "code", "403", "route", "POST "+api.PathManifest): 1,
		e2etest.Series("cloister_api_requests_total", "api", "client", "code", "413", "route", "POST "+api.PathManifest): 1,
		e2etest.Series("cloister_api_requests_total", "api", "client", "code", "200", "route", "POST "+api.PathManifest): 2,
		e2etest.Series("cloister_manifest_version"):                             2,
		e2etest.Series("cloister_coordinator_state", "state", api.StateRunning): 1,
	} {
		if got, ok := m[strings.TrimSuffix(s, "{}")]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, want)
		}
	}
	if m[e2etest.Series("cloister_api_requests_total", "api", "mesh", "code", "200", "route", "GET "+api.PathQuoteEpoch)] < 1 {
		t.Errorf("metrics count no shared quote requests on the workload API (launchers verify with it)")
	}
}

func (d *deployment) restartKeepsState(t *testing.T) {
	before := d.status(t)
	manifestBefore := d.mustCLI(t, "", "manifest", "get").Stdout
	secretArgs := append([]string{"secret", "get", "shared", "tlscert", "user", "--output", "json"}, d.conn("reader")...)
	secretsBefore := d.e.CLISecrets(t, secretArgs...).Stdout

	d.co.Restart(t)
	if rec := logRecordWith(d.co.Proc.Output(), "loaded deployment"); rec == nil || rec["manifest_version"] != 2.0 {
		t.Errorf("the restarted Coordinator did not log that it loaded manifest version 2 (%v):\n%s", rec, d.co.Proc.Output())
	}
	// The pinned CLI still works: same root CA.
	if after := d.status(t); !cmp.Equal(after, before, ignoreActivations) {
		t.Errorf("status after restart = %+v, want %+v", after, before)
	}
	if got := d.mustCLI(t, "", "manifest", "get").Stdout; got != manifestBefore {
		t.Errorf("the manifest changed across the restart")
	}
	if inter := d.checkCertificates(t); !inter.Equal(d.inter2) {
		t.Errorf("the intermediate changed across the restart")
	}
	if got := d.e.CLISecrets(t, secretArgs...).Stdout; got != secretsBefore {
		t.Errorf("secret values changed across the restart")
	}
	// Activation counts survived: the limits still hold.
	d.e.launchFails(t, d.apps["limited"], d.launch("l4"), `coordinator refused (ACTIVATION_LIMIT): workload "limited" reached its maximum of 2 activations`)
	d.e.launchFails(t, d.apps["needs-user"], d.launch("n2"), `coordinator refused (ACTIVATION_LIMIT): workload "needs-user" reached its maximum of 1 activations`)
	// Per-instance secrets survived.
	a := d.apps["app"]
	if err := os.Rename(filepath.Join(a.outDir, "i2"), filepath.Join(a.outDir, "i2-first")); err != nil {
		t.Fatal(err)
	}
	s := d.e.mustLaunch(t, a, d.launch("i2"))
	if s.env["INST_HEX"] != d.instanceKeys["i2"] {
		t.Errorf("instance i2's per-instance secret changed across the restart")
	}
	d.checkApp(t, s, "i2", "2", d.inter2)
}

func (d *deployment) rootChange(t *testing.T) {
	pinned, err := os.ReadFile(d.pinFile())
	if err != nil {
		t.Fatal(err)
	}
	d.co.Stop(t)
	// A new deployment (fresh data directory) answers on the same address.
	at := d.co.Addrs
	fresh := d.e.StartCoordinator(t, "coordinator-fresh", d.p, d.e.Path("data-fresh"), &at)
	d.cliFails(t, "", []string{"coordinator certificate was not issued by the deployment root"}, "status")
	d.cliFails(t, "admin", []string{"coordinator certificate was not issued by the deployment root"}, "manifest", "set", d.v1Path)
	d.cliFails(t, "", []string{"the deployment root of " + d.client() + " changed: pinned " + fingerprint(d.root) + ", now ", "--replace-pin"},
		"verify", "--simulation", d.p.Dir())
	if now, err := os.ReadFile(d.pinFile()); err != nil || !bytes.Equal(now, pinned) {
		t.Errorf("a refused verification changed the pinned root (%v)", err)
	}
	d.mustCLI(t, "", "verify", "--simulation", d.p.Dir(), "--replace-pin")
	if st := d.status(t); st.State != api.StateWaitingForManifest {
		t.Errorf("the fresh Coordinator is %s, want %s", st.State, api.StateWaitingForManifest)
	}
	fresh.Stop(t)
}

// logRecordWith returns the first JSON log record with message msg, or nil.
func logRecordWith(out, msg string) map[string]any {
	for line := range strings.Lines(out) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

func (d *deployment) noSecretsInLogs(t *testing.T) {
	lines := d.e.assertNoSecretsInLogs(t, d.secrets)
	t.Logf("scanned %d log lines for %d secret values", lines, len(d.secrets))
	// Every Coordinator log line is JSON and says it runs in simulation.
	logs := d.e.Logs()
	var refusals, activations int
	for _, l := range logs {
		if !strings.Contains(l.Name, " coordinator") {
			continue
		}
		for line := range strings.Lines(l.Out.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("%s: log line is not JSON: %q", l.Name, line)
				continue
			}
			if rec["simulation"] != true {
				t.Errorf("%s: log line without simulation=true: %q", l.Name, line)
			}
			switch {
			case rec["msg"] == "request refused" && rec["path"] == api.PathActivate:
				refusals++
			case rec["msg"] == "workload activated":
				activations++
			}
		}
	}
	if refusals == 0 || activations == 0 {
		t.Errorf("the Coordinator logged %d activations and %d refusals; want both", activations, refusals)
	}
}
