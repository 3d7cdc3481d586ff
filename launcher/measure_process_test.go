package launcher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// TestLaunchProcessMeasuresItsBinary: in simulation the launcher's own file is half its
// measurement. The real cloister-launch binary, pinned by its MRENCLAVE in the deployment
// manifest, activates with an enclave manifest that records it (taking the recorded hash after
// checking its size and Go build ID), with one that records it without a build ID (hashing
// itself and comparing) and with one that does not record it (hashing itself). The same binary
// with one byte appended (the kernel runs it just the same), or with its build ID changed and
// its size kept, is refused at once against the record; the latter, against a record without
// a build ID, is hashed and refused before it activates; without a record the former measures
// differently and is refused by the Coordinator. A trusted file that changed after the
// manifest was signed is refused.
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
	rec, err := image.DescribeLauncher(launcher)
	if err != nil || rec.GoBuildID == "" {
		t.Fatalf("DescribeLauncher = %+v, %v; want a Go build ID", rec, err)
	}
	modified := filepath.Join(dir, "cloister-launch-modified")
	if err := os.WriteFile(modified, append(bytes.Clone(exe), 0), 0o755); err != nil {
		t.Fatal(err)
	}
	// The build ID's first copy is its ELF note, near the start of the file.
	patched := filepath.Join(dir, "cloister-launch-patched")
	i := bytes.Index(exe, []byte(rec.GoBuildID))
	p := bytes.Clone(exe)
	p[i] = map[bool]byte{true: 'A', false: 'B'}[p[i] != 'A'] // another base64url character
	if err := os.WriteFile(patched, p, 0o755); err != nil {
		t.Fatal(err)
	}

	key, err := enclave.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	packages, workloads := map[string]any{}, map[string]any{}
	manifests := map[string]string{}
	noID := *rec
	noID.GoBuildID = ""
	for name, l := range map[string]*enclave.Launcher{"plain": nil, "recorded": rec, "recorded-no-id": &noID} {
		m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: 7, ISVSVN: 3, Argv: []string{app}, WorkingDir: "/",
			Files: []enclave.File{{Path: app, SHA256: sha256.Sum256(bin), Size: int64(len(bin))}}, Launcher: l}
		raw, err := enclave.Sign(m, key)
		if err != nil {
			t.Fatal(err)
		}
		manifests[name] = filepath.Join(dir, name+".json")
		if err := os.WriteFile(manifests[name], raw, 0o644); err != nil {
			t.Fatal(err)
		}
		signed, err := enclave.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		mr := enclave.SimMRENCLAVE(sha256.Sum256(exe), signed.Raw)
		packages[name] = map[string]any{"mrenclave": hex.EncodeToString(mr[:])}
		workloads[name] = map[string]any{"package": name, "exec": true}
	}
	doc, _ := json.Marshal(map[string]any{"packages": packages, "workloads": workloads})
	if _, err := c.Core.SetManifest(t.Context(), nil, doc); err != nil {
		t.Fatal(err)
	}
	run := func(bin, workload string) (string, error) {
		cmd := exec.Command(bin)
		cmd.Env = []string{EnvCoordinator + "=" + c.MeshAddr, EnvWorkload + "=" + workload, EnvInstance + "=app-1", EnvTEE + "=" + TEESimulation,
			EnvSimDir + "=" + c.Platform.Dir(), EnvEnclaveManifest + "=" + manifests[workload], EnvRetryTimeout + "=0s", "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	for workload, how := range map[string]string{"recorded": "launcher_hash=recorded", "plain": "launcher_hash=computed", "recorded-no-id": "launcher_hash=computed"} {
		if out, err := run(launcher, workload); err != nil || !strings.Contains(out, how) {
			t.Errorf("the pinned launcher, %s: %v\n%s\nwant it activated, saying %s", workload, err, out, how)
		}
	}
	for _, tc := range []struct {
		name, bin, workload string
		want                []string
		early               bool // refused before it activates
	}{
		{"byte appended, recorded", modified, "recorded", []string{"refusing to start: this launcher is not the one the enclave manifest was made for",
			fmt.Sprintf("expected %d bytes with Go build ID %q", len(exe), rec.GoBuildID), fmt.Sprintf("found %d bytes", len(exe)+1)}, true},
		{"build ID changed, recorded", patched, "recorded", []string{"refusing to start: this launcher is not the one the enclave manifest was made for",
			fmt.Sprintf("found %d bytes with Go build ID", len(exe))}, true},
		{"build ID changed, recorded without it", patched, "recorded-no-id", []string{"refusing to start: this launcher is not the one the enclave manifest was made for",
			fmt.Sprintf("found SHA-256 %x", sha256.Sum256(p))}, true},
		{"byte appended, not recorded", modified, "plain", []string{"not starting the application", "POLICY_REJECTED", "not accepted"}, false},
	} {
		out, err := run(tc.bin, tc.workload)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(out, w) {
				t.Errorf("%s = %v\n%s\nwant it refused, saying %q", tc.name, err, out, w)
			}
		}
		if strings.Contains(out, "activated") || (tc.early && strings.Contains(out, "msg=activating")) {
			t.Errorf("%s activated, or tried to, although it should be refused first:\n%s", tc.name, out)
		}
	}
	if err := os.WriteFile(app, append(bin, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run(launcher, "recorded")
	if err == nil || !strings.Contains(out, "do not match the manifest") {
		t.Errorf("the pinned launcher with a modified trusted file = %v\n%s\nwant it refused", err, out)
	}
}
