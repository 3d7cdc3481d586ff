package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// TestLaunchProcessMeasuresItsBinary: in simulation the launcher's own file is half its
// measurement, however fast it is hashed. The real cloister-launch binary, pinned by its
// MRENCLAVE in the deployment manifest, activates; the same binary with one byte appended (the
// kernel runs it just the same) measures differently and is refused, as is a trusted file that
// changed after the manifest was signed.
func TestLaunchProcessMeasuresItsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cloister-launch")
	}
	c := coordtest.Start(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "true")
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true")
	}
	if err := os.WriteFile(app, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := enclave.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: 7, ISVSVN: 3, Argv: []string{app}, WorkingDir: "/",
		Files: []enclave.File{{Path: app, SHA256: sha256.Sum256(bin), Size: int64(len(bin))}}}
	raw, err := enclave.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	em := filepath.Join(dir, "enclave.json")
	if err := os.WriteFile(em, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	launcher := filepath.Join(dir, "cloister-launch")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", launcher, "github.com/cloister-dev/cloister/cmd/cloister-launch")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cloister-launch: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(launcher)
	if err != nil {
		t.Fatal(err)
	}
	modified := filepath.Join(dir, "cloister-launch-modified")
	if err := os.WriteFile(modified, append(exe, 0), 0o755); err != nil {
		t.Fatal(err)
	}

	signed, err := enclave.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	mr := enclave.SimMRENCLAVE(sha256.Sum256(exe), signed.Raw)
	doc, _ := json.Marshal(map[string]any{
		"packages":  map[string]any{"p": map[string]any{"mrenclave": hex.EncodeToString(mr[:])}},
		"workloads": map[string]any{"app": map[string]any{"package": "p", "exec": true}},
	})
	if _, err := c.Core.SetManifest(t.Context(), nil, doc); err != nil {
		t.Fatal(err)
	}
	env := []string{EnvCoordinator + "=" + c.MeshAddr, EnvWorkload + "=app", EnvInstance + "=app-1", EnvTEE + "=" + TEESimulation,
		EnvSimDir + "=" + c.Platform.Dir(), EnvEnclaveManifest + "=" + em, EnvRetryTimeout + "=0s", "PATH=/usr/bin:/bin"}
	run := func(bin string) (string, error) {
		cmd := exec.Command(bin)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := run(launcher); err != nil {
		t.Fatalf("the pinned launcher: %v\n%s", err, out)
	}
	out, err := run(modified)
	if err == nil || !strings.Contains(out, "not starting the application") || !strings.Contains(out, "POLICY_REJECTED") || !strings.Contains(out, "not accepted") {
		t.Errorf("the launcher with a byte appended = %v\n%s\nwant the activation refused for its MRENCLAVE", err, out)
	}
	if err := os.WriteFile(app, append(bin, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = run(launcher)
	if err == nil || !strings.Contains(out, "do not match the manifest") {
		t.Errorf("the pinned launcher with a modified trusted file = %v\n%s\nwant it refused", err, out)
	}
}
