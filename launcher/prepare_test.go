package launcher

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
)

var (
	signerOnce sync.Once
	signerKey  *rsa.PrivateKey
	signerErr  error
)

func testSigner(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	signerOnce.Do(func() { signerKey, signerErr = enclave.GenerateKey() })
	if signerErr != nil {
		t.Fatal(signerErr)
	}
	return signerKey
}

// testCoordinator is an in-process Coordinator serving on loopback.
type testCoordinator struct {
	c        *core.Core
	mesh     string
	platform *sim.Platform
}

func startTestCoordinator(t *testing.T) *testCoordinator {
	t.Helper()
	c := coordtest.Start(t)
	return &testCoordinator{c: c.Core, mesh: c.MeshAddr, platform: c.Platform}
}

// writeApp signs an enclave manifest for /bin/sh and returns its path and parsed form.
func writeApp(t *testing.T, dir string, edit func(*enclave.Manifest)) (string, *enclave.Signed) {
	t.Helper()
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	m := &enclave.Manifest{
		Version: enclave.FormatVersion, ISVProdID: 7, ISVSVN: 3,
		Argv:       []string{"/bin/sh", "-c", "from the enclave manifest"},
		Env:        map[string]string{"PATH": "/usr/bin:/bin", "FIXED": "fixed", "OVERRIDE": "fixed"},
		AllowEnv:   []string{"ALLOWED", "LC_*"},
		WorkingDir: dir,
		Files:      []enclave.File{{Path: "/bin/sh", SHA256: sha256.Sum256(sh), Size: int64(len(sh))}},
	}
	if edit != nil {
		edit(m)
	}
	raw, err := enclave.Sign(m, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "enclave.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := enclave.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return path, s
}

func (tc *testCoordinator) setManifest(t *testing.T, m map[string]any) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.c.SetManifest(t.Context(), nil, b); err != nil {
		t.Fatal(err)
	}
}

func signedPackage(t *testing.T, minSVN int) map[string]any {
	id := enclave.MRSigner(&testSigner(t).PublicKey)
	return map[string]any{"mrsigner": hex.EncodeToString(id[:]), "isvprodid": 7, "min_isvsvn": minSVN}
}

// TestPrepare runs a launch up to the exec against an in-process Coordinator: the plan's
// program, argv, environment and working directory, and the delivered files with the
// workload's own key in place of the placeholder.
func TestPrepare(t *testing.T) {
	tc := startTestCoordinator(t)
	dir := t.TempDir()
	path, _ := writeApp(t, dir, nil)
	out := filepath.Join(dir, "out")
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package": "p",
			"env":     map[string]string{"TOKEN": "{{.Secrets.t.Hex}}", "OVERRIDE": "delivered", "ALLOWED": "delivered-wins"},
			"files": map[string]string{
				out + "/key.pem":    "{{.Workload.Key}}",
				out + "/cert.pem":   "{{.Workload.Cert}}",
				out + "/bundle.pem": "{{.Workload.Cert}}{{.Workload.Key}}",
			},
			"argv": []string{"sh", "-c", "from the deployment manifest", "{{.Workload.Instance}}"},
		}},
		"secrets": map[string]any{"t": map[string]any{"type": "symmetric-key", "size": 128}},
	})
	var logs strings.Builder
	cfg := Config{
		Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
		EnclaveManifest: path, RetryTimeout: 0,
		HostEnv: []string{"ALLOWED=host", "LC_ALL=C", "DENIED=x", "PATH=/host/bin", "CLOISTER_WORKLOAD=app"},
		Log:     slog.New(slog.NewTextHandler(&logs, nil)),
	}
	plan, err := Prepare(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Prepare: %v\n%s", err, logs.String())
	}
	if filepath.Base(plan.Path) != "sh" || !filepath.IsAbs(plan.Path) {
		t.Errorf("program %q, want sh resolved through the enclave manifest's PATH", plan.Path)
	}
	if want := []string{"sh", "-c", "from the deployment manifest", "app-1"}; !slices.Equal(plan.Argv, want) {
		t.Errorf("argv %q, want the deployment manifest's %q", plan.Argv, want)
	}
	if plan.Dir != dir || plan.UID != -1 || plan.GID != -1 {
		t.Errorf("dir %q uid %d", plan.Dir, plan.UID)
	}
	var token string
	for _, kv := range plan.Env {
		if v, ok := strings.CutPrefix(kv, "TOKEN="); ok {
			token = v
		}
	}
	if len(token) != 32 {
		t.Errorf("TOKEN %q: want 32 hex digits", token)
	}
	// HOME, set by neither the image nor the deployment, is the user's in /etc/passwd, as runc sets it.
	want := []string{"ALLOWED=delivered-wins", "FIXED=fixed", "HOME=" + imageUsers.home(os.Getuid()), "LC_ALL=C", "OVERRIDE=delivered", "PATH=/usr/bin:/bin", "TOKEN=" + token}
	if !slices.Equal(plan.Env, want) {
		t.Errorf("environment:\n got %q\nwant %q (sorted; fixed < allowed host < delivered; DENIED, host PATH and CLOISTER_* dropped; HOME from /etc/passwd)", plan.Env, want)
	}

	keyPEM, err := os.ReadFile(filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("key.pem is not a private key: %v", err)
	}
	certPEM, _ := os.ReadFile(filepath.Join(out, "cert.pem"))
	certs, err := pki.ParseCertsPEM(certPEM)
	if err != nil || len(certs) != 1 {
		t.Fatalf("cert.pem: %v", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(certs[0].PublicKey) {
		t.Errorf("key.pem does not belong to the workload certificate")
	}
	if bundle, _ := os.ReadFile(filepath.Join(out, "bundle.pem")); string(bundle) != string(certPEM)+string(keyPEM) {
		t.Errorf("bundle.pem is not the certificate followed by the substituted key")
	}
	for _, name := range []string{"key.pem", "cert.pem", "bundle.pem"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", name, fi.Mode(), err)
		}
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), strings.Split(string(keyPEM), "\n")[1]) {
		t.Errorf("the launcher logged a secret:\n%s", logs.String())
	}
}

// TestPrepareRefusals: every failure is final and nothing is written.
func TestPrepareRefusals(t *testing.T) {
	tc := startTestCoordinator(t)
	dir := t.TempDir()
	path, _ := writeApp(t, dir, nil)
	out := filepath.Join(dir, "out")
	tc.setManifest(t, map[string]any{
		"packages":  map[string]any{"strict": signedPackage(t, 4)},
		"workloads": map[string]any{"app": map[string]any{"package": "strict", "files": map[string]string{out + "/f": "x"}}},
	})
	tamperedDir := t.TempDir()
	tampered, _ := writeApp(t, tamperedDir, func(m *enclave.Manifest) { m.Files[0].SHA256[0] ^= 1 })
	base := Config{Workload: "app", Instance: "i", TEE: TEESimulation, SimDir: tc.platform.Dir(), EnclaveManifest: path, RetryTimeout: time.Minute}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"refused by policy: no retry", func(c *Config) { c.Coordinator = tc.mesh },
			"activation failed: coordinator refused (POLICY_REJECTED): workload \"app\" (package \"strict\"): isvsvn 3 not accepted; expected at least 4"},
		{"trusted file changed: refused before any contact", func(c *Config) { c.Coordinator = "127.0.0.1:1"; c.EnclaveManifest = tampered },
			"refusing to start: "},
		{"no enclave manifest", func(c *Config) { c.Coordinator = tc.mesh; c.EnclaveManifest = filepath.Join(dir, "missing.json") },
			"enclave manifest: open "},
		{"simulation without a platform", func(c *Config) { c.Coordinator = tc.mesh; c.SimDir = "" },
			"CLOISTER_TEE=simulation needs CLOISTER_SIM_DIR"},
		{"unreachable Coordinator, no retry time", func(c *Config) { c.Coordinator = "127.0.0.1:1"; c.RetryTimeout = 0 },
			"activation failed: connect to coordinator 127.0.0.1:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.edit(&cfg)
			start := time.Now()
			_, err := Prepare(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Prepare = %v; want an error with %q", err, c.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Prepare took %v to refuse; a refusal must not be retried", d)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused launch wrote delivered files")
			}
		})
	}
}
