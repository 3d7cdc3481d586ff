package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// startupSetup starts an in-process Coordinator and writes a signed enclave manifest for
// /bin/true (its one trusted file) with a manifest that delivers a certificate, key and
// secret, as a small real workload would get. exec says whether the workload is exec'd.
func startupSetup(b testing.TB, exec bool) (tc *testCoordinator, path string) {
	c := coordtest.Start(b)
	tc = &testCoordinator{c: c.Core, mesh: c.MeshAddr, platform: c.Platform}
	dir := b.TempDir()
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		b.Skip("no /bin/true")
	}
	key, err := enclave.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: 7, ISVSVN: 3, Argv: []string{"/bin/true"}, WorkingDir: "/",
		Files: []enclave.File{{Path: "/bin/true", SHA256: sha256.Sum256(bin), Size: int64(len(bin))}}}
	raw, err := enclave.Sign(m, key)
	if err != nil {
		b.Fatal(err)
	}
	path = filepath.Join(dir, "enclave.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	signer := enclave.MRSigner(&key.PublicKey)
	out := filepath.Join(dir, "out")
	doc, _ := json.Marshal(map[string]any{
		"packages": map[string]any{"p": map[string]any{"mrsigner": hex.EncodeToString(signer[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{"app": map[string]any{"package": "p", "exec": exec,
			"files": map[string]string{out + "/cert.pem": "{{.Workload.Chain}}", out + "/key.pem": "{{.Workload.Key}}", out + "/token": "{{.Secrets.t.Hex}}"},
			"env":   map[string]string{"TOKEN": "{{.Secrets.t.Hex}}"}}},
		"secrets": map[string]any{"t": map[string]any{"type": "symmetric-key", "size": 256}},
	})
	if _, err := tc.c.SetManifest(b.Context(), nil, doc); err != nil {
		b.Fatal(err)
	}
	return tc, path
}

// BenchmarkStartup measures a launch in process from reading the enclave manifest to the
// point where the application would start: verify the trusted file, measure the launcher
// (hash its own executable, here the test binary), verify the Coordinator's quote, activate
// with a new key and quote, write the delivered files. The executable's size is reported as
// exe-MB: the hash is proportional to it.
func BenchmarkStartup(b *testing.B) {
	tc, path := startupSetup(b, false)
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
		EnclaveManifest: path, HostEnv: []string{"PATH=/usr/bin:/bin"}, Log: slog.New(slog.DiscardHandler)}
	exe, _ := os.Executable()
	fi, err := os.Stat(exe)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	fastest := time.Duration(1 << 62)
	for b.Loop() {
		t0 := time.Now()
		if _, err := Prepare(b.Context(), cfg); err != nil {
			b.Fatal(err)
		}
		fastest = min(fastest, time.Since(t0))
	}
	b.ReportMetric(float64(fi.Size())/1e6, "exe-MB")
	b.ReportMetric(float64(fastest.Microseconds())/1000, "min-ms")
}

// BenchmarkLaunchProcess measures what a container's start pays: the cloister-launch binary
// (built here as for images, CGO_ENABLED=0; "stripped" with -trimpath -ldflags='-s -w', as the
// README and the e2e tests build it) from its exec to
// the exec of the application (/bin/true, exec: true), the runtime's start, process creation
// and /bin/true included. The Coordinator runs in this process, so on a machine with few CPUs
// the two compete. The Coordinator serves its shared epoch quote, which the launcher fetches
// while it checks its enclave manifest and trusted files.
func BenchmarkLaunchProcess(b *testing.B) {
	tc, path := startupSetup(b, true)
	env := []string{EnvCoordinator + "=" + tc.mesh, EnvWorkload + "=app", EnvInstance + "=app-1", EnvTEE + "=" + TEESimulation,
		EnvSimDir + "=" + tc.platform.Dir(), EnvEnclaveManifest + "=" + path, EnvRetryTimeout + "=0s", "PATH=/usr/bin:/bin"}
	for _, bc := range []struct {
		name  string
		flags []string
	}{{"default", nil}, {"stripped", []string{"-trimpath", "-ldflags=-s -w"}}} {
		b.Run(bc.name, func(b *testing.B) {
			bin := filepath.Join(b.TempDir(), "cloister-launch")
			args := append(append([]string{"build"}, bc.flags...), "-o", bin, "github.com/cloister-dev/cloister/cmd/cloister-launch")
			build := exec.Command("go", args...)
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				b.Fatalf("build cloister-launch: %v\n%s", err, out)
			}
			fi, err := os.Stat(bin)
			if err != nil {
				b.Fatal(err)
			}
			var took []time.Duration
			var cpu time.Duration
			for b.Loop() {
				cmd := exec.Command(bin)
				cmd.Env = env
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("cloister-launch: %v\n%s", err, out)
				}
				took = append(took, time.Since(t0))
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			slices.Sort(took)
			fastest, median, p90 := took[0], took[len(took)/2], took[(len(took)-1)*9/10]
			b.ReportMetric(float64(fi.Size())/1e6, "exe-MB")
			// On a loaded machine the mean is mostly waiting for a CPU: the fastest start and
			// the launcher's own CPU time say more.
			b.ReportMetric(float64(fastest.Microseconds())/1000, "min-ms")
			b.ReportMetric(float64(median.Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkRenew measures one renewal as the supervisor does it: a new key, the Coordinator
// verified on a new connection, an activation with a new quote, the files replaced.
func BenchmarkRenew(b *testing.B) {
	tc, path := startupSetup(b, false)
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
		EnclaveManifest: path, HostEnv: []string{"PATH=/usr/bin:/bin"}, Log: slog.New(slog.DiscardHandler)}
	p, err := Prepare(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := &renewer{launch: p.launch, env: p.Env, argv: p.Argv, from: p.activated, notAfter: p.NotAfter, now: time.Now}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.renew(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHashExecutable: the faster hash of the launcher's executable is the same measurement as
// attest.ExecutableSHA256's.
func TestHashExecutable(t *testing.T) {
	got, err := hashExecutable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := attest.ExecutableSHA256()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("hashExecutable = %x, want attest.ExecutableSHA256's %x", got, want)
	}
}

func BenchmarkHashExecutable(b *testing.B) {
	exe, _ := os.Executable()
	fi, err := os.Stat(exe)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for _, bc := range []struct {
		name string
		hash func() ([32]byte, error)
	}{{"mmap", hashExecutable}, {"read", attest.ExecutableSHA256}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(fi.Size())
			for b.Loop() {
				if _, err := bc.hash(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
