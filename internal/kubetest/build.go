package kubetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries are the programs a cluster runs that do not come from Debian packages.
type Binaries struct {
	// APIServer, ControllerManager, Scheduler and Kubelet are built from the k8s.io/kubernetes
	// release tools/kube/go.mod pins, by tools/kube/build.sh, into a cache shared by every test
	// process on the machine.
	APIServer, ControllerManager, Scheduler, Kubelet string
	// Pause is the static program of [PauseImage], built from ./pause.
	Pause string
	// Dir is the cache directory of the Kubernetes binaries.
	Dir string
}

// BuildTimeout bounds a cold build of the Kubernetes binaries: about 10 minutes on 2 cores,
// with the module cache filled.
const BuildTimeout = 40 * time.Minute

// Build returns the binaries, building what the cache lacks, at most once per test process;
// a cold build stops when ctx ends or after [BuildTimeout]. logf, if not nil, is told before a
// cold build starts. It is safe for concurrent use; every call returns the first call's result.
func Build(ctx context.Context, logf func(format string, args ...any)) (*Binaries, error) {
	buildOnce.Do(func() {
		if logf == nil {
			logf = func(string, ...any) {}
		}
		built, buildErr = buildAll(ctx, logf)
		if buildErr != nil {
			buildErr = fmt.Errorf("build the Kubernetes binaries: %w", buildErr)
		}
	})
	return built, buildErr
}

var (
	buildOnce sync.Once
	built     *Binaries
	buildErr  error
)

// Bins returns [Build]'s binaries, or fails tb with the build's error. A cold build ends a
// minute before the test binary's -timeout, so that the failure is reported.
func Bins(tb testing.TB) *Binaries {
	tb.Helper()
	ctx := context.Background()
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Minute))
			defer cancel()
		}
	}
	b, err := Build(ctx, tb.Logf)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func buildAll(ctx context.Context, logf func(string, ...any)) (*Binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "tools", "kube", "build.sh")
	ctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()

	// A warm cache answers at once; a cold one is worth a line in the test log first.
	var out, errOut bytes.Buffer
	check := exec.CommandContext(ctx, script, "-n")
	check.Stdout, check.Stderr = &out, &errOut
	if err := check.Run(); err != nil {
		logf("kubetest: the Kubernetes binaries are not cached; building them with %s (cold: about 10 minutes on 2 cores, at most %v)", script, BuildTimeout)
		out.Reset()
		errOut.Reset()
		start := time.Now()
		cmd := exec.CommandContext(ctx, script, "-q")
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s (run it, or .ci/kube, before the tests to fill the cache): %w\n%s", script, err, tailString(errOut.String(), 40))
		}
		logf("kubetest: built the Kubernetes binaries in %v", time.Since(start).Round(time.Second))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := lines[len(lines)-1]
	b := &Binaries{
		Dir:               dir,
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		Scheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubelet:           filepath.Join(dir, "kubelet"),
	}
	for _, f := range []string{b.APIServer, b.ControllerManager, b.Scheduler, b.Kubelet} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s printed %s, which lacks a binary: %w", script, dir, err)
		}
	}
	if b.Pause, err = buildPause(ctx, root, filepath.Dir(dir)); err != nil {
		return nil, err
	}
	return b, nil
}

//go:embed pause/main.go
var pauseSource []byte

// buildPause builds ./pause, static, into cacheBase/pause-KEY (KEY: a hash of its source and
// the Go version) unless it is there.
func buildPause(ctx context.Context, root, cacheBase string) (string, error) {
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	h := sha256.New()
	h.Write(pauseSource)
	h.Write(goVersion)
	dir := filepath.Join(cacheBase, "pause-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(dir, "pause")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build next to the target and rename, so that concurrent builders never expose half a file.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(tmp, "pause"),
		"github.com/cloister-dev/cloister/internal/kubetest/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the pause program: %w: %s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "pause"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// moduleRoot returns the directory of the main module's go.mod, found upwards from the
// working directory (a test's is its package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/cloister-dev/cloister\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/cloister-dev/cloister above the working directory")
		}
		dir = parent
	}
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
