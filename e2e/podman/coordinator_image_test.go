package podman

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// coordinatorImageOutput is `image coordinator --output json`.
type coordinatorImageOutput = jsonoutput.ImageCoordinator

// TestCoordinatorImage builds the Coordinator as a confidential image with `cloister image
// coordinator`, twice (to an archive and to an OCI layout) with the same digest, runs it in
// podman on a simulated platform mounted at /sim with its ports published on loopback, and
// verifies it from outside with `cloister verify --mrenclave` and the printed measurement; a
// wrong measurement is refused with both values named. A host program signed with `cloister
// enclave sign` to accept only that measurement then activates with it through `cloister
// launch` and gets its delivered file. The container stops cleanly.
func TestCoordinatorImage(t *testing.T) {
	eng := newEngine(t)
	env := e2etest.New(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := env.Bins.Coordinator
	key := filepath.Join(dir, "signer.pem")
	mrsigner := keygen(t, key)

	ref := "localhost/cloister-e2e/coordinator:" + eng.run
	archive := filepath.Join(dir, "coordinator.tar")
	build := func(dst string) coordinatorImageOutput {
		t.Helper()
		var out coordinatorImageOutput
		raw := mustCloister(t, "image", "coordinator", "--sign-key", key, "--binary", bin, "--output", "json", dst)
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("image coordinator output: %v\n%s", err, raw)
		}
		return out
	}
	first := build("docker-archive:" + archive + ":" + ref)
	second := build("oci:" + filepath.Join(dir, "layout") + ":1")
	if first.Digest == "" || first.Digest != second.Digest {
		t.Fatalf("the same binary and key gave digests %q and %q; want one digest", first.Digest, second.Digest)
	}
	if first.MRSigner != fmt.Sprintf("%x", mrsigner) {
		t.Errorf("printed MRSIGNER %s; want the key's %x", first.MRSigner, mrsigner)
	}

	simDir := filepath.Join(dir, "sim")
	mustCloister(t, "sim", "init", simDir)
	if err := filepath.Walk(simDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode) // readable through the bind mount, whatever user the container maps to
	}); err != nil {
		t.Fatal(err)
	}
	eng.load(archive, ref)
	clientPort, meshPort := freePort(t), freePort(t)
	name := "cloister-e2e-coordinator-image-" + eng.run
	eng.must(time.Minute, "run", "-d", "--name", name,
		"-p", fmt.Sprintf("127.0.0.1:%d:4433", clientPort), "-p", fmt.Sprintf("127.0.0.1:%d:2001", meshPort),
		"-v", simDir+":/sim:ro", ref, "--simulation", "/sim")
	c := &container{e: eng, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of container %s:\n%s", name, tail(c.logs(), 4000))
		}
		eng.podman(time.Minute, "rm", "-f", "-t", "2", name)
	})
	client := fmt.Sprintf("127.0.0.1:%d", clientPort)
	e2etest.WaitFor(t, time.Minute, "the containerized Coordinator to listen", func() (bool, string) {
		if !c.running() {
			t.Fatalf("the Coordinator container stopped:\n%s", c.logs())
		}
		return strings.Contains(c.logs(), "coordinator listening") && listening(client), c.logs()
	})
	if logs := c.logs(); !strings.Contains(logs, "SIMULATION MODE") {
		t.Errorf("the containerized Coordinator does not say it runs in simulation:\n%s", logs)
	}

	wrong := strings.Repeat("ab", 32)
	env.CLIFails(t, []string{"coordinator NOT verified",
		fmt.Sprintf("mrenclave %s not accepted; expected one of [%s]", first.MREnclaveSimulation, wrong)},
		"verify", "-c", client, "--simulation", simDir, "--mrenclave", wrong)
	res := env.MustCLI(t, "verify", "-c", client, "--simulation", simDir, "--mrenclave", first.MREnclaveSimulation, "--output", "json")
	var v jsonoutput.Verify
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		t.Fatalf("verify output: %v\n%s", err, res.Stdout)
	}
	if !v.Verified || !v.Simulation || !v.IdentityChecked || v.MREnclave != first.MREnclaveSimulation || v.MRSigner != first.MRSignerSimulation {
		t.Errorf("verify printed %+v; want verified in simulation with MRENCLAVE %s and MRSIGNER %s", v, first.MREnclaveSimulation, first.MRSignerSimulation)
	}

	// A host program that accepts only this Coordinator (the printed MRENCLAVE) activates with
	// it and gets its file.
	appDir, out := env.Path("hostapp"), env.Path("out.txt")
	e2etest.WriteFile(t, filepath.Join(appDir, "app.sh"), []byte(`cat "$FILE" > "$OUT"`+"\n"), 0o755)
	enclaveManifest := env.Path("hostapp.enclave.json")
	signed := env.MustCLI(t, "enclave", "sign", "--sign-key", key, "--manifest", enclaveManifest, "--file", appDir,
		"--env", "FILE="+filepath.Join(appDir, "delivered.txt"), "--env", "OUT="+out,
		"--coordinator-mrenclave", first.MREnclaveSimulation, "--output", "json", "--", "/bin/sh", filepath.Join(appDir, "app.sh"))
	var s struct {
		MREnclave string `json:"mrenclave_simulation"`
	}
	if err := json.Unmarshal([]byte(signed.Stdout), &s); err != nil {
		t.Fatalf("enclave sign output: %v\n%s", err, signed.Stdout)
	}
	e2etest.WriteJSON(t, env.Path("manifest.json"), map[string]any{
		"settings": map[string]any{"trust_domain": "coordinator-image.e2e.test"},
		"packages": map[string]any{"host": map[string]any{"mrenclave": s.MREnclave}},
		"workloads": map[string]any{"hostapp": map[string]any{
			"package": "host",
			"files":   map[string]string{filepath.Join(appDir, "delivered.txt"): "from the containerized Coordinator"},
		}},
	})
	env.MustCLI(t, "manifest", "set", env.Path("manifest.json"), "-c", client)
	launch := env.Start(t, "cloister launch hostapp", append(env.BaseEnv(),
		fmt.Sprintf("CLOISTER_COORDINATOR=127.0.0.1:%d", meshPort), "CLOISTER_WORKLOAD=hostapp", "CLOISTER_INSTANCE=one",
		"CLOISTER_SIM_DIR="+simDir, "CLOISTER_ENCLAVE_MANIFEST="+enclaveManifest, "CLOISTER_RETRY_TIMEOUT=10s"),
		env.Bins.Cloister, "launch")
	if code := launch.Wait(t, e2etest.RunTimeout); code != 0 {
		t.Fatalf("cloister launch against the containerized Coordinator exited with %d:\n%s", code, launch.Output())
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != "from the containerized Coordinator" {
		t.Errorf("the host program wrote %q, %v; want the delivered file's content", got, err)
	}

	eng.must(time.Minute, "stop", "-t", "20", name)
	if code := c.wait(time.Minute); code != 0 {
		t.Errorf("the Coordinator container exited with code %d after SIGTERM; want 0", code)
	}
}
