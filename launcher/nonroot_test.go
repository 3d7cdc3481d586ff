package launcher

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A container run as a non-root user (podman run --user) whose simulated platform directory
// that user cannot read is refused with the requirement named, before anything is sent.
func TestMainNonRootNeedsReadableSimDir(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("starts a process")
	}
	const uid = 65534
	dir := realTempDir(t)
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) { // the manifest is readable
		noErr(t, os.Chmod(d, 0o755))
	}
	path, _ := writeApp(t, dir, nil)
	simDir := startTestCoordinator(t).platform.Dir() // in a 0700 root directory
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	exe := filepath.Join(dir, "cloister-launch") // the test binary, where uid can run it
	b, err := os.ReadFile(os.Args[0])
	noErr(t, err)
	noErr(t, os.WriteFile(exe, b, 0o755))
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envRunLauncher+"=1",
		EnvCoordinator+"=127.0.0.1:1", EnvWorkload+"=app", EnvInstance+"=app-1", EnvTEE+"="+TEESimulation,
		EnvSimDir+"="+simDir, EnvEnclaveManifest+"="+path, EnvRetryTimeout+"=0s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if strings.Contains(stderr.String(), "enclave manifest") || stderr.Len() == 0 {
		t.Skipf("the test binary or its files are not reachable by uid %d here: %v %s", uid, err, stderr.String())
	}
	want := "cloister-launch: not starting the application: the simulated SGX platform directory " + simDir +
		" is not readable by uid 65534 (the container runs as a non-root user): make it readable by that user: "
	if err == nil || !strings.Contains(stderr.String(), want) {
		t.Errorf("launcher as uid %d: %v\nstderr:\n%s\nwant a line starting %q", uid, err, stderr.String(), want)
	}
}
