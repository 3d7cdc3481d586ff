package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// startupSetup starts an in-process Coordinator with a manifest that delivers a certificate,
// key and secret, as a small real workload would get, to workloads signed by one enclave key.
// exec says whether the workload is exec'd. sign writes an enclave manifest for /bin/true (its
// one trusted file) signed with that key, recording the launcher l (nil for none), and returns
// its path.
func startupSetup(b testing.TB, exec bool) (tc *testCoordinator, sign func(l *enclave.Launcher) string) {
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
	n := 0
	sign = func(l *enclave.Launcher) string {
		m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: 7, ISVSVN: 3, Argv: []string{"/bin/true"}, WorkingDir: "/",
			Files: []enclave.File{{Path: "/bin/true", SHA256: sha256.Sum256(bin), Size: int64(len(bin))}}, Launcher: l}
		raw, err := enclave.Sign(m, key)
		if err != nil {
			b.Fatal(err)
		}
		n++
		path := filepath.Join(dir, fmt.Sprintf("enclave-%d.json", n))
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			b.Fatal(err)
		}
		return path
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
	return tc, sign
}

// describe is image.DescribeLauncher of the launcher binary at path.
func describe(b testing.TB, path string) *enclave.Launcher {
	l, err := image.DescribeLauncher(path)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkStartup measures a launch in process from reading the enclave manifest to the
// point where the application would start: verify the trusted file, measure the launcher (the
// test binary, by the enclave manifest's record of it, or, hashed, by hashing its whole
// executable), verify the Coordinator's quote, activate with a new key and quote, write the
// delivered files. The executable's size is reported as exe-MB: the hash is proportional to it.
func BenchmarkStartup(b *testing.B) {
	tc, sign := startupSetup(b, false)
	exe, _ := os.Executable()
	rec := describe(b, exe)
	for _, bc := range []struct {
		name string
		l    *enclave.Launcher
	}{{"recorded", rec}, {"hashed", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
				EnclaveManifest: sign(bc.l), HostEnv: []string{"PATH=/usr/bin:/bin"}, Log: slog.New(slog.DiscardHandler)}
			b.ReportAllocs()
			fastest := time.Duration(1 << 62)
			for b.Loop() {
				t0 := time.Now()
				if _, err := Prepare(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
				fastest = min(fastest, time.Since(t0))
			}
			b.ReportMetric(float64(rec.Size)/1e6, "exe-MB")
			b.ReportMetric(float64(fastest.Microseconds())/1000, "min-ms")
		})
	}
}

// BenchmarkLaunchProcess measures what a container's start pays: the cloister-launch binary
// (built here as for images, CGO_ENABLED=0; "stripped" with -trimpath -ldflags='-s -w', as the
// README and the e2e tests build it) from its exec to the exec of the application (/bin/true,
// exec: true), the runtime's start, process creation and /bin/true included. The enclave
// manifest records the launcher, as a converted image's does; "stripped-hashed" is the stripped
// launcher with a manifest that does not, so that it hashes its executable (as with images
// converted before the record). The Coordinator runs in this process, so on a machine with few
// CPUs the two compete. The Coordinator serves its shared epoch quote, which the launcher
// fetches while it checks its enclave manifest and trusted files.
//
// With CLOISTER_BENCH_BASE_LAUNCHER set to another cloister-launch binary (an older build,
// given a manifest without the record, which it does not know), the "compare" sub-benchmark
// starts it and the stripped build of this tree alternately, so that both see the same load,
// and reports each one's figures (base-* and new-*).
func BenchmarkLaunchProcess(b *testing.B) {
	tc, sign := startupSetup(b, true)
	env := func(manifest string) []string {
		return []string{EnvCoordinator + "=" + tc.mesh, EnvWorkload + "=app", EnvInstance + "=app-1", EnvTEE + "=" + TEESimulation,
			EnvSimDir + "=" + tc.platform.Dir(), EnvEnclaveManifest + "=" + manifest, EnvRetryTimeout + "=0s", "PATH=/usr/bin:/bin"}
	}
	stripped := []string{"-trimpath", "-ldflags=-s -w"}
	for _, bc := range []struct {
		name     string
		flags    []string
		recorded bool
	}{{"default", nil, true}, {"stripped", stripped, true}, {"stripped-hashed", stripped, false}} {
		b.Run(bc.name, func(b *testing.B) {
			bin := buildLauncher(b, bc.flags)
			var rec *enclave.Launcher
			if bc.recorded {
				rec = describe(b, bin)
			}
			e := env(sign(rec))
			// The allocations reported are this process's (starting the launcher, the
			// Coordinator's side of the activation), not the launcher's own.
			b.ReportAllocs()
			var s startStats
			for b.Loop() {
				s.start(b, bin, e)
			}
			s.report(b, bin, "")
		})
	}
	base := os.Getenv("CLOISTER_BENCH_BASE_LAUNCHER")
	if base == "" {
		return
	}
	b.Run("compare", func(b *testing.B) {
		bin := buildLauncher(b, stripped)
		baseEnv, binEnv := env(sign(nil)), env(sign(describe(b, bin)))
		b.ReportAllocs()
		var old, cur startStats
		for b.Loop() {
			old.start(b, base, baseEnv)
			cur.start(b, bin, binEnv)
		}
		old.report(b, base, "base-")
		cur.report(b, bin, "new-")
	})
}

// buildLauncher builds cmd/cloister-launch static with flags.
func buildLauncher(b *testing.B, flags []string) string {
	bin := filepath.Join(b.TempDir(), "cloister-launch")
	args := append(append([]string{"build"}, flags...), "-o", bin, "github.com/cloister-dev/cloister/cmd/cloister-launch")
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build cloister-launch: %v\n%s", err, out)
	}
	return bin
}

// startStats collects the starts of one launcher binary.
type startStats struct {
	took, cpu []time.Duration
	faults    int64 // minor page faults, summed
}

// start runs bin once, to the exec of the application.
func (s *startStats) start(b *testing.B, bin string, env []string) {
	cmd := exec.Command(bin)
	cmd.Env = env
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("cloister-launch %s: %v\n%s", bin, err, out)
	}
	s.took = append(s.took, time.Since(t0))
	s.cpu = append(s.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.faults += ru.Minflt
	}
}

// report reports the starts' wall-clock minimum, median and 90th percentile, their median and
// mean CPU time (user and system, the launcher's and /bin/true's), minor page faults per start
// and bin's size, each metric's name prefixed.
func (s *startStats) report(b *testing.B, bin, prefix string) {
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	took, cpu := slices.Sorted(slices.Values(s.took)), slices.Sorted(slices.Values(s.cpu))
	n := len(took)
	var sum time.Duration
	for _, c := range cpu {
		sum += c
	}
	b.ReportMetric(float64(fi.Size())/1e6, prefix+"exe-MB")
	// On a loaded machine the wall-clock time is mostly waiting for a CPU: the fastest start
	// and the launcher's own CPU time say more.
	b.ReportMetric(ms(took[0]), prefix+"min-ms")
	b.ReportMetric(ms(took[n/2]), prefix+"median-ms")
	b.ReportMetric(ms(took[(n-1)*9/10]), prefix+"p90-ms")
	b.ReportMetric(ms(cpu[n/2]), prefix+"cpu-median-ms")
	b.ReportMetric(ms(sum)/float64(n), prefix+"cpu-ms/op")
	b.ReportMetric(float64(s.faults)/float64(n), prefix+"minflt/op")
}

// BenchmarkRenew measures one renewal as the supervisor does it: a new key, the Coordinator
// verified on a new connection, an activation with a new quote, the files replaced.
func BenchmarkRenew(b *testing.B) {
	tc, sign := startupSetup(b, false)
	exe, _ := os.Executable()
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
		EnclaveManifest: sign(describe(b, exe)), HostEnv: []string{"PATH=/usr/bin:/bin"}, Log: slog.New(slog.DiscardHandler)}
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
